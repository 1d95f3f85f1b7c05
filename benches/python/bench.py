#!/usr/bin/env python3
"""Throughput of Python asyncio task-pool libraries on no-op tasks.

Reference numbers for async-taskpool's Rust benchmarks: how many trivial tasks
per second each library pushes through a pool with a concurrency limit, next
to hand-rolled stdlib asyncio code doing the same job.

Every measurement:
  * runs N no-op tasks (`async def noop(): pass`, or `async def noop1(x): pass`
    for map-style APIs that call a one-argument coroutine function);
  * runs in its own fresh Python process (unless --no-isolate) and in a fresh
    event loop via `asyncio.run` (the default loop; no uvloop);
  * is timed with `time.perf_counter`.

What is timed: from the first submission until every task has finished
(including the library's own drain/join/close step). NOT timed: interpreter
start, imports, event loop creation and the pool/semaphore constructor (one
O(1) object, built inside the running loop just before the clock starts
because AioPool and friends need a running loop). Creating each task's
coroutine object IS timed, as users pay for it per task.

A no-op task never suspends, so nothing ever waits on the limit inside a
task: the figures are the per-task bookkeeping cost each library adds (task,
future and slot handling, scheduling), which is what a pool's overhead is.
The limit still changes how submission and completion interleave.

Before timing, every case is run once untimed on min(N, 5000) counting tasks to
check that exactly that many tasks ran.

Run via run.sh, which installs the pinned libraries into a venv.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import platform
import statistics
import subprocess
import sys
import time


# --------------------------------------------------------------------------
# Task bodies
# --------------------------------------------------------------------------

async def noop():
    pass


async def noop1(_x):
    pass


_COUNT = [0]


async def count0():
    _COUNT[0] += 1


async def count1(_x):
    _COUNT[0] += 1


# --------------------------------------------------------------------------
# Cases. Each is `async def case(n, limit, f0, f1) -> elapsed_seconds`, where
# f0 is a zero-argument coroutine function and f1 a one-argument one.
# The clock starts after the pool/semaphore is constructed.
# --------------------------------------------------------------------------

async def case_asyncio_semaphore(n, limit, f0, f1):
    # Hand-rolled baseline: one task per item, each guarded by a shared
    # Semaphore(limit), then gather. (Eager: all N tasks exist up front.)
    sem = asyncio.Semaphore(limit)

    async def guarded():
        async with sem:
            await f0()

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(guarded()) for _ in range(n)]
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0


async def case_aiopool_spawn(n, limit, f0, f1):
    # asyncio-pool: `await pool.spawn(coro)` (waits for a free slot, returns a
    # future we drop), then `await pool.join()`.
    from asyncio_pool import AioPool

    pool = AioPool(size=limit)
    t0 = time.perf_counter()
    for _ in range(n):
        await pool.spawn(f0())
    await pool.join()
    return time.perf_counter() - t0


async def case_aiopool_map(n, limit, f0, f1):
    # asyncio-pool: `await pool.map(fn, iterable)` (lazy spawn, waits for all,
    # returns results in input order).
    from asyncio_pool import AioPool

    pool = AioPool(size=limit)
    t0 = time.perf_counter()
    res = await pool.map(f1, range(n))
    elapsed = time.perf_counter() - t0
    assert len(res) == n
    return elapsed


async def case_taskpool_map(n, limit, f0, f1):
    # asyncio-taskpool: `pool.map(fn, iterable, num_concurrent=limit)` returns
    # at once (a meta task spawns the tasks); `gather_and_close()` waits.
    # Note: `pool_size` is really the pool semaphore's *free-slot count*; on a
    # fresh pool that equals the configured maximum, so effective concurrency
    # is min(num_concurrent, pool_size) = limit.
    from asyncio_taskpool import TaskPool

    pool = TaskPool(pool_size=limit)
    t0 = time.perf_counter()
    pool.map(f1, range(n), num_concurrent=limit)
    await pool.gather_and_close()
    return time.perf_counter() - t0


async def case_concurrent_tasks(n, limit, f0, f1):
    # concurrent_tasks: `async with TaskPool(size=limit)`; `create_task(coro)`
    # never blocks (items beyond `size` wait in an unbounded asyncio.Queue
    # buffer), and `__aexit__` drains buffer + running tasks.
    from concurrent_tasks import TaskPool

    pool = TaskPool(size=limit)
    t0 = time.perf_counter()
    async with pool:
        for _ in range(n):
            pool.create_task(f0())
    return time.perf_counter() - t0


# id -> (library label, distribution name or None for stdlib, method, fn)
CASES = {
    "asyncio-semaphore": ("asyncio (stdlib)", None,
                          "`Semaphore(limit)` + `create_task` per item + `gather` (baseline)",
                          case_asyncio_semaphore),
    "aiopool-spawn": ("asyncio-pool", "asyncio-pool",
                      "`AioPool(size=limit)`: `await spawn(noop())` each, `await join()`",
                      case_aiopool_spawn),
    "aiopool-map": ("asyncio-pool", "asyncio-pool",
                    "`AioPool(size=limit)`: `await map(noop1, range(N))`",
                    case_aiopool_map),
    "taskpool-map": ("asyncio-taskpool", "asyncio-taskpool",
                     "`TaskPool(pool_size=limit).map(noop1, range(N), num_concurrent=limit)`, "
                     "`await gather_and_close()`",
                     case_taskpool_map),
    "concurrent-tasks": ("concurrent_tasks", "concurrent_tasks",
                         "`async with TaskPool(size=limit)`: `create_task(noop())` each",
                         case_concurrent_tasks),
}
BASELINE = "asyncio-semaphore"


def lib_label(case_id):
    label, dist, _, _ = CASES[case_id]
    if dist is None:
        return f"{label} {platform.python_version()}"
    return f"{label} {importlib.metadata.version(dist)}"


def measure_in_process(case_id, n, limit):
    fn = CASES[case_id][3]
    gc.collect()
    return asyncio.run(fn(n, limit, noop, noop1))


def measure(case_id, n, limit, isolate):
    if not isolate:
        return measure_in_process(case_id, n, limit)
    out = subprocess.run(
        [sys.executable, __file__, "--_one", case_id, str(n), str(limit)],
        check=True, capture_output=True, text=True,
    )
    if out.stderr.strip():
        sys.stderr.write(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def check(case_id, n, limit):
    """Untimed correctness check: exactly n tasks must run."""
    fn = CASES[case_id][3]
    _COUNT[0] = 0
    asyncio.run(fn(n, limit, count0, count1))
    if _COUNT[0] != n:
        raise SystemExit(f"{case_id} limit={limit}: ran {_COUNT[0]} tasks, expected {n}")


def fmt_rate(x):
    return f"{x:,.0f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None, help="tasks per measurement (default 100000)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per case; the median is reported (default 5)")
    ap.add_argument("--limits", default="100,1000", help="comma-separated concurrency limits (default 100,1000)")
    ap.add_argument("--quick", action="store_true", help="smoke test: n=2000, rounds=1 (explicit --n/--rounds still win)")
    ap.add_argument("--no-isolate", dest="isolate", action="store_false",
                    help="measure in this process instead of one fresh process per measurement")
    ap.add_argument("--_one", nargs=3, metavar=("CASE", "N", "LIMIT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._one:
        case_id, n, limit = args._one
        print(repr(measure_in_process(case_id, int(n), int(limit))))
        return

    n = args.n if args.n is not None else (2000 if args.quick else 100_000)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    limits = [int(x) for x in args.limits.split(",") if x.strip()]
    if n < 1 or rounds < 1 or not limits or min(limits) < 1:
        ap.error("--n, --rounds and every limit must be >= 1")

    order = list(CASES)
    for limit in limits:
        for case_id in order:
            check(case_id, min(n, 5000), limit)

    # Rounds are interleaved (round 1 of every case, then round 2, ...) so slow
    # drift of the machine spreads over all cases instead of hitting one.
    times = {(c, l): [] for l in limits for c in order}
    for r in range(rounds):
        for limit in limits:
            for case_id in order:
                t = measure(case_id, n, limit, args.isolate)
                times[(case_id, limit)].append(t)
                print(f"round {r + 1}/{rounds} limit={limit:<5} {case_id:<18} "
                      f"{t * 1e3:9.1f} ms  {n / t:12,.0f} tasks/s", file=sys.stderr)

    loop = asyncio.new_event_loop()
    loop_name = type(loop).__name__
    loop.close()
    print(f"- Workload: {n:,} no-op tasks per measurement, median of {rounds} round(s); "
          f"each measurement in a {'fresh process and ' if args.isolate else ''}fresh `asyncio.run` "
          f"event loop (default {loop_name})")
    print("- Timed: first submission until all tasks finished (incl. join/drain/close); "
          "pool constructor and loop start-up not timed")
    print("- ratio = tasks/s ÷ tasks/s of the asyncio `Semaphore` baseline at the same limit "
          "(> 1 is faster than the baseline)")
    print()
    print("| library | method | limit | tasks/s | ratio to asyncio Semaphore baseline |")
    print("|---|---|---:|---:|---:|")
    for limit in limits:
        base = n / statistics.median(times[(BASELINE, limit)])
        for case_id in order:
            rate = n / statistics.median(times[(case_id, limit)])
            _, _, method, _ = CASES[case_id]
            print(f"| {lib_label(case_id)} | {method} | {limit} | {fmt_rate(rate)} | {rate / base:.2f}× |")

    # Raw numbers, so readers can judge the noise behind each median.
    print()
    print("<details><summary>tasks/s of every round</summary>")
    print()
    print("| case | limit | rounds (tasks/s) |")
    print("|---|---:|---|")
    for limit in limits:
        for case_id in order:
            rates = ", ".join(fmt_rate(n / t) for t in times[(case_id, limit)])
            print(f"| {case_id} | {limit} | {rates} |")
    print()
    print("</details>")


if __name__ == "__main__":
    main()
