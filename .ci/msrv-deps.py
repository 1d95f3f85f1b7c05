"""Fails if a package that a workspace member builds with (this platform's dependency graph;
the member's own dev-dependencies included, not its dependencies' ones) declares a
rust-version newer than that member's. Each member is held to its own `rust-version`: the
job queue's (sqlx) is newer than the pool's. Reads `cargo metadata` on stdin."""
import json
import sys


def key(version):
    return tuple(int(x) for x in (version.split(".") + ["0", "0"])[:3])


meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}


def deps(node_id, with_dev):
    for dep in nodes[node_id]["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if with_dev or kinds != {"dev"}:
            yield dep["pkg"]


failed = False
for member in meta["workspace_members"]:
    msrv = packages[member].get("rust_version")
    name = packages[member]["name"]
    if not msrv:
        continue
    seen, todo = set(), list(deps(member, with_dev=True))
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        todo.extend(deps(pkg, with_dev=False))
    newer = sorted(
        "  %s %s needs Rust %s" % (packages[p]["name"], packages[p]["version"], packages[p]["rust_version"])
        for p in seen
        if packages[p].get("rust_version") and key(packages[p]["rust_version"]) > key(msrv)
    )
    if newer:
        failed = True
        print("%s (rust-version %s) builds with newer packages:" % (name, msrv))
        print("\n".join(newer))
    else:
        print("%s: all %d packages build with Rust %s" % (name, len(seen), msrv))
sys.exit(1 if failed else 0)
