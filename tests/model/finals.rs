//! The model's checks at the end of a case: every task ended exactly once, as the model
//! allows, and handles, groups, callbacks and counters agree; the pool, its handles gone,
//! lets go of everything.

use super::*;

/// What the driver got back for one loose task at the end.
#[derive(Default)]
struct Answer {
    /// From its handle.
    handle: Option<Result<usize, TaskError>>,
    /// From its `exec`.
    exec: Option<Result<usize, ExecError>>,
    /// Its submission was refused.
    refused: Option<PoolError>,
    /// Where its answer was to go stayed empty (it was never submitted, or its `exec` was
    /// dropped).
    unanswered: bool,
}

impl Model {
    /// At the end: every task ended exactly once, as allowed, and every handle, group,
    /// callback and counter (`st`, when the driver still had the pool) agrees; then the pool,
    /// its handles gone, lets go of everything.
    pub(super) async fn final_checks(mut self, st: Option<PoolStats>, end: usize) {
        self.done.wait_for(self.continuations).await;
        *self.ctx.pool.lock().unwrap() = None;
        if st.is_some() {
            self.check_idle(end);
        }
        // Every group's driver (its input and closure) goes once the group settles: then no
        // user code calls the pool any more, and every answer below is final.
        let limit = watchdog() / 2;
        let dropped = self.closures_dropped.wait_for(self.closures);
        if let futures::future::Either::Right(_) =
            futures::future::select(std::pin::pin!(dropped), self.sp.sleep(limit)).await
        {
            panic!(
                "{} of {} map closures still held {limit:?} after the end: a group that never \
                 settles, or a leak",
                self.closures - self.closures_dropped.get(),
                self.closures
            );
        }
        let mut group_res = Vec::new();
        for gr in &mut self.groups {
            let (mut summary, mut results) = (gr.summary, None);
            if let Some(mut group) = gr.group.take() {
                let got: Vec<Result<Out, TaskError>> = group.by_ref().collect().await;
                results = Some(got.into_iter().map(task_tag).collect::<Vec<_>>());
                summary = Some(group.summary());
            }
            if let Some(join) = gr.joined.take() {
                summary = Some(join.await.expect("join from outside the pool"));
            }
            group_res.push((summary, results));
        }
        // Take every answer, so that nothing holds the pool any more.
        let mut answers = Vec::new();
        for s in &mut self.singles {
            let mut a = Answer::default();
            let mut handle = s.handle.take();
            if let Some(slot) = s.spawn_slot.take() {
                match slot.lock().unwrap().take() {
                    Some(Ok(h)) => handle = Some(h),
                    Some(Err(e)) => a.refused = Some(e),
                    None => a.unanswered = true,
                }
            }
            if let Some(slot) = s.exec_slot.take() {
                match slot.lock().unwrap().take() {
                    Some(Err(ExecError::Pool(e))) => a.refused = Some(e),
                    Some(res) => a.exec = Some(res),
                    None => a.unanswered = true,
                }
            }
            if let Some(h) = handle {
                s.id = Some(h.id().get());
                a.handle = Some(task_tag(h.await));
            }
            if let Some(res) = s.early.take() {
                a.handle = Some(res);
            }
            // Outcomes no task of the model records itself: shed (it never ran), and the
            // final failure of a retried task (its failing attempts record only that they
            // ran).
            if let (Some(id), Some(res)) = (s.id, &a.handle) {
                match res {
                    Err(e) if e.is_shed() => self.ctx.record(id, |r| r.shed = true),
                    Ok(FAIL) if s.retry.is_some() => self.ctx.record(id, |r| r.completed += 1),
                    Err(e) if s.retry.is_some() && e.is_panic() => {
                        self.ctx.record(id, |r| r.panicked += 1)
                    }
                    _ => {}
                }
            }
            answers.push(a);
        }
        self.pool = None;
        self.simple = None;
        let freed = self.freed.wait_for(1);
        let timer = self.sp.sleep(limit);
        if let futures::future::Either::Right(_) =
            futures::future::select(std::pin::pin!(freed), timer).await
        {
            panic!(
                "the pool was not freed within {limit:?} of its last handle going: a task or a \
                 runner that never ends, or a leak"
            );
        }
        let v = self.ctx.violations.lock().unwrap().clone();
        assert!(v.is_empty(), "{v:?}");
        let mut tracer = self.ctx.tracer.lock().unwrap().clone();
        // An item of a group with a `max_queue_wait` that never ran and was not cancelled
        // was shed (its `on_end` ran).
        for r in tracer.values_mut() {
            if let Some(Kind::Item(g)) = r.kind {
                if self.groups[g].sheds && r.beh.is_none() && r.on_cancel == 0 {
                    r.shed = true;
                }
            }
        }
        let ids: Vec<u64> = tracer.keys().copied().collect();
        let handed_out = match &st {
            Some(st) => st.submitted,
            None => ids.last().map_or(0, |last| last + 1),
        };
        assert_eq!(
            ids,
            (0..handed_out).collect::<Vec<_>>(),
            "every id handed out ends"
        );
        for (id, r) in &tracer {
            let ends = if r.plain { 0 } else { 1 };
            assert_eq!(
                r.on_end, ends,
                "task {id}: on_end ran {} times: {r:?}",
                r.on_end
            );
            assert!(
                r.on_cancel <= 1 && r.started <= 1 && r.completed <= 1 && r.panicked <= 1,
                "task {id}: {r:?}"
            );
            assert!(
                !(r.completed == 1 && r.on_cancel == 1),
                "task {id} completed and was cancelled: {r:?}"
            );
            assert!(r.kind.is_some(), "task {id} of unknown origin");
            if r.shed {
                assert_eq!(
                    (r.started, r.on_cancel, r.fail_runs),
                    (0, 0, 0),
                    "task {id} was shed: {r:?}"
                );
            }
            if outcome_of(r) == Outcome::TimedOut {
                assert_eq!(r.beh, Some(Beh::Slow), "task {id} timed out: {r:?}");
            }
        }
        self.map_start_items(&mut tracer);
        // Singles.
        let mut single_ids = Vec::new();
        for (key, a) in answers.iter().enumerate() {
            let found: Vec<u64> = tracer
                .iter()
                .filter(|(_, r)| r.kind == Some(Kind::Single(key)))
                .map(|(id, _)| *id)
                .collect();
            let s = &self.singles[key];
            if s.origin == Origin::Driver {
                assert!(
                    a.refused.is_none() && !a.unanswered,
                    "single {key}: accepted, then {:?} (continuation done: {})",
                    a.refused,
                    !a.unanswered
                );
                assert_eq!(found.len(), 1, "single {key} has ids {found:?}");
                if let Some(k) = s.known_id() {
                    assert_eq!(k, found[0]);
                }
            } else {
                self.check_maybe_single(key, &found, a);
            }
            if let Some(&id) = found.first() {
                self.check_single_outcome(key, id, &tracer, a);
                single_ids.push(id);
            }
        }
        // Nothing new starts after close: later ids belong to groups accepted before it.
        if let Some((sub, at)) = self.closed_at {
            for (id, r) in tracer.range(sub..) {
                match r.kind {
                    Some(Kind::Item(g)) if self.groups[g].step < at => {}
                    other => panic!("task {id} ({other:?}) got an id after close at step {at}"),
                }
            }
        }
        // Groups.
        let mut group_final = Vec::new();
        for (g, (summary, results)) in group_res.into_iter().enumerate() {
            let gr = &self.groups[g];
            let items: Vec<(u64, &Rec)> = tracer
                .iter()
                .filter(|(_, r)| r.kind == Some(Kind::Item(g)))
                .map(|(id, r)| (*id, r))
                .collect();
            let mut tally = GroupSummary::default();
            let mut group_steps = gr.cancel_steps.clone();
            group_steps.extend(self.cancel_all_steps.iter().filter(|&&c| c > gr.step));
            let window = self.window_cancels_group(g);
            if gr.keyed {
                // Set-aside items get their ids as they are pulled: ids follow input order.
                let tags: Vec<usize> = items.iter().filter_map(|(_, r)| r.tag).collect();
                assert!(
                    tags.windows(2).all(|w| w[0] < w[1]),
                    "keyed group {g}: ids out of input order: {items:?}"
                );
            }
            for &(id, r) in &items {
                let out = outcome_of(r);
                match out {
                    Outcome::Completed => tally.completed += 1,
                    Outcome::Cancelled => tally.cancelled += 1,
                    Outcome::Panicked => tally.panicked += 1,
                    Outcome::TimedOut => tally.timed_out += 1,
                    Outcome::Shed => tally.shed += 1,
                }
                let mut steps = group_steps.clone();
                steps.extend(self.id_cancels.iter().filter(|c| c.0 == id).map(|c| c.1));
                match r.beh {
                    Some(beh) => {
                        if let GKind::Start(_) = gr.kind {
                            assert_eq!(beh, start_task(id).beh, "start item {id}");
                        }
                        let release = gr.gate.map(|i| self.gates[i].1.expect("open"));
                        let allowed =
                            allowed_final(beh, release, &steps, window, |c| self.sure(c, id));
                        assert!(
                            allowed.contains(&out),
                            "group {g} item {id} ({beh:?}) ended {out:?}, allowed {allowed:?}"
                        );
                    }
                    None if gr.sheds => assert!(
                        matches!(out, Outcome::Cancelled | Outcome::Shed),
                        "group {g} item {id} never ran: {r:?}"
                    ),
                    None => assert_eq!(
                        out,
                        Outcome::Cancelled,
                        "group {g} item {id} never ran: {r:?}"
                    ),
                }
            }
            let maybe_cancelled = self.group_maybe_cancelled(g);
            let expected = match gr.kind {
                GKind::Start(n) => n as usize,
                _ => gr.items.len(),
            };
            if !maybe_cancelled || matches!(gr.kind, GKind::Start(_)) {
                assert_eq!(items.len(), expected, "group {g}: every item runs");
            } else {
                assert!(items.len() <= expected);
            }
            let Some(mut summary) = summary else {
                // Its `Group` was dropped: the tracer alone tells how its items ended.
                group_final.push(None);
                continue;
            };
            let total = summary.total();
            match gr.kind {
                GKind::Start(_) => assert_eq!(summary.not_started, 0, "group {g}: {summary:?}"),
                _ if !maybe_cancelled => {
                    assert_eq!(summary.not_started, 0, "group {g}: {summary:?}")
                }
                // Items of a cancelled map never started are counted (its input knows its
                // length), once each (a group cancelled while a worker pulled a batch from
                // its input counted the batch twice, in `item_pulled` and `item_arrived`).
                _ => assert_eq!(
                    total + summary.not_started,
                    expected as u64,
                    "group {g}: {summary:?} of {expected} items"
                ),
            }
            // Items never pulled are counted only in `not_started`, which the tracer (it sees
            // items that were pulled) does not model.
            summary.not_started = 0;
            assert_eq!(summary, tally, "group {g}: summary vs tracer");
            if let (Some(results), true) = (&results, gr.sheds) {
                for e in results.iter().filter_map(|r| r.as_ref().err()) {
                    let id = e.id().get();
                    assert_eq!(
                        e.is_shed(),
                        tracer[&id].shed,
                        "group {g} item {id}: {e} vs {:?}",
                        tracer[&id]
                    );
                    if e.is_shed() {
                        crate::cover("a group's item was shed");
                    }
                }
            }
            if let Some(results) = results {
                assert_eq!(
                    results.len() as u64,
                    summary.total(),
                    "group {g}: one result per item"
                );
                if gr.ordered {
                    let tags: Vec<usize> = results
                        .iter()
                        .filter_map(|r| r.as_ref().ok().copied())
                        .collect();
                    assert!(
                        tags.windows(2).all(|w| w[0] < w[1]),
                        "group {g}: out of input order: {tags:?}"
                    );
                    let errs: Vec<u64> = results
                        .iter()
                        .filter_map(|r| r.as_ref().err().map(|e| e.id().get()))
                        .collect();
                    assert!(
                        errs.windows(2).all(|w| w[0] < w[1]),
                        "group {g}: errors out of order: {errs:?}"
                    );
                }
            }
            group_final.push(Some(summary));
        }
        if let Some(st) = st {
            self.check_counters(&st, &tracer, &single_ids, &group_final);
        }
    }

    /// Start items report no group: each `start` took the next block of ids, in order.
    fn map_start_items(&self, tracer: &mut BTreeMap<u64, Rec>) {
        let mut start_ids = tracer
            .iter()
            .filter(|(_, r)| r.kind == Some(Kind::Start))
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
            .into_iter();
        for (g, gr) in self.groups.iter().enumerate() {
            let GKind::Start(n) = gr.kind else { continue };
            let block: Vec<u64> = start_ids.by_ref().take(n as usize).collect();
            assert_eq!(block.len() as u64, n, "start group {g}: ids {block:?}");
            if let (Some(&first), Some(&last)) = (block.first(), block.last()) {
                assert_eq!(
                    last - first + 1,
                    n,
                    "start group {g}: ids {block:?} not one block"
                );
                assert!(first >= gr.first_id, "start group {g}: ids {block:?}");
                if let Some((lo, _)) = gr.start_ids {
                    assert_eq!(first, lo, "start group {g}");
                }
            }
            for id in block {
                tracer.get_mut(&id).expect("listed").kind = Some(Kind::Item(g));
            }
        }
        let rest: Vec<u64> = start_ids.collect();
        assert!(rest.is_empty(), "start items of no start group: {rest:?}");
    }

    /// A task that user code or a task may have submitted: found at most once, exactly when
    /// it was submitted, made whenever what makes it ran to the end, and refused only where
    /// the pool may have refused.
    fn check_maybe_single(&self, key: usize, found: &[u64], a: &Answer) {
        let s = &self.singles[key];
        assert!(found.len() <= 1, "single {key} has ids {found:?}");
        let (from, until, maker_ran) = match s.origin {
            Origin::Reentrant(w) => {
                let w = &self.windows[w];
                // A shed item's closure is never called.
                let sheds = self.groups[w.group].sheds;
                (
                    w.from,
                    w.until,
                    !self.group_maybe_cancelled(w.group) && !sheds,
                )
            }
            Origin::Child(parent, _) => (s.step, None, !self.single_maybe_cancelled(parent)),
            Origin::Driver => unreachable!("the driver's tasks are always made"),
        };
        if let Some(e) = &a.refused {
            assert!(found.is_empty(), "single {key} refused ({e}) but ran");
            assert!(
                matches!(e, PoolError::Locked { .. } | PoolError::Closed { .. }),
                "single {key} ({:?}) refused: {e}",
                s.origin
            );
            assert!(
                self.maybe_refusing(from, until),
                "single {key} ({:?}) refused ({e}), but the pool accepted work from step \
                 {from} on",
                s.origin
            );
        }
        if maker_ran {
            assert!(
                !a.unanswered,
                "single {key} ({:?}): what makes it ran to the end, but it was never submitted",
                s.origin
            );
        }
        if a.handle.is_some() {
            assert_eq!(
                found.len(),
                1,
                "single {key} has a handle but ids {found:?}"
            );
            assert_eq!(s.id, Some(found[0]));
        } else if matches!(s.origin, Origin::Reentrant(_)) {
            assert!(
                found.is_empty(),
                "single {key}: ran without a handle: {found:?}"
            );
        }
    }

    fn check_single_outcome(&self, key: usize, id: u64, tracer: &BTreeMap<u64, Rec>, a: &Answer) {
        let s = &self.singles[key];
        let out = outcome_of(&tracer[&id]);
        let id_steps: Vec<usize> = self
            .id_cancels
            .iter()
            .filter(|c| c.0 == id)
            .map(|c| c.1)
            .collect();
        let mut steps = id_steps.clone();
        steps.extend(self.cancel_all_steps.iter().filter(|&&c| c > s.step));
        steps.extend(s.dropped_at);
        // An `exec` child is cancelled with its parent (its `exec` is dropped).
        let by_parent = match s.origin {
            Origin::Child(parent, Inner::Exec) => {
                let p = &self.singles[parent];
                p.id.is_some_and(|pid| self.id_cancels.iter().any(|c| c.0 == pid))
                    || self.cancel_all_steps.iter().any(|&c| c > p.step)
                    || self.window_cancels_all(p.step)
            }
            _ => false,
        };
        let maybe = by_parent || self.window_cancels_all(s.step);
        let release = s
            .gate
            .map(|g| self.gates[g].1.expect("all gates open at the end"));
        let (strict, parked) = (self.strict, &self.parked);
        // A task the driver did not submit may not exist yet when a cancel comes, unless the
        // cancel named it.
        let exists = s.origin == Origin::Driver;
        let sure = |c: usize| {
            parked.get(&c).is_some_and(|p| p.contains(&id))
                || (strict && (exists || id_steps.contains(&c)))
        };
        let mut allowed = allowed_final(s.beh(), release, &steps, maybe, sure);
        let asked = !steps.is_empty() || maybe;
        if let Some(r) = s.retry {
            let fail = if r.by_panic {
                Outcome::Panicked
            } else {
                Outcome::Completed
            };
            if r.fails >= r.max {
                // No attempt behaves: the last failure is final.
                for o in &mut allowed {
                    if *o == Outcome::Completed {
                        *o = fail;
                    }
                }
            } else if asked {
                // Cancelled while a failing attempt ran: it keeps that attempt's failure.
                allowed.push(fail);
            }
        }
        match s.shed {
            Some(true) if maybe => allowed = vec![Outcome::Shed, Outcome::Cancelled],
            Some(true) => allowed = vec![Outcome::Shed],
            Some(false) => allowed.push(Outcome::Shed),
            None => {}
        }
        assert!(
            allowed.contains(&out),
            "single {key} (id {id}, {:?}, {:?}, submitted at step {}) ended {out:?}, allowed \
             {allowed:?} (cancels at {steps:?}, gate open at {release:?}; {:?})",
            s.task,
            s.origin,
            s.step,
            tracer[&id]
        );
        if let Some(b) = tracer[&id].beh {
            assert_eq!(b, s.beh());
        }
        if let Some(res) = &a.handle {
            assert_eq!(out_of(res), out, "single {key}: handle vs tracer");
            match (res, s.retry) {
                (Ok(FAIL), Some(r)) => assert!(
                    !r.by_panic && (r.fails >= r.max || asked),
                    "single {key} ({r:?}): ended with a failed attempt's output"
                ),
                (Ok(tag), _) => assert_eq!(*tag, key),
                (Err(_), _) => {}
            }
        }
        if let Some(r) = s.retry {
            self.check_retried(key, r, &tracer[&id], a, asked);
        }
        if let Some(&(_, _, runs)) = self.backoff_cancels.iter().find(|b| b.0 == key) {
            // Cancelled in its backoff: it ends cancelled at once, with no further attempt.
            crate::cover("a retried task was cancelled in its backoff");
            let rec = &tracer[&id];
            assert_eq!(
                (out, rec.fail_runs, rec.started),
                (Outcome::Cancelled, runs, 0),
                "retried single {key}, cancelled in its backoff after {runs} failing attempts: \
                 {rec:?}"
            );
            if let Some(Err(e)) = &a.handle {
                assert_eq!(e.attempts(), runs, "{e}");
            }
        }
        match &a.exec {
            Some(Ok(tag)) => {
                assert_eq!(out, Outcome::Completed, "single {key}: exec vs tracer");
                assert_eq!(*tag, key);
            }
            Some(Err(ExecError::Task(e))) => {
                assert_eq!(err_outcome(e), out, "single {key}: exec vs tracer")
            }
            Some(Err(e)) => panic!("single {key}: exec: {e}"),
            None => {}
        }
    }

    /// A retried task ran its failing attempts (all of them unless it was maybe cancelled),
    /// and its error says how many attempts it was given.
    fn check_retried(&self, key: usize, r: RetrySpec, rec: &Rec, a: &Answer, asked: bool) {
        let ran = u32::from(r.fails.min(r.max));
        assert!(
            rec.fail_runs <= ran,
            "retried single {key} ({r:?}): {} failing attempts ran: {rec:?}",
            rec.fail_runs
        );
        if !asked {
            assert_eq!(
                rec.fail_runs, ran,
                "retried single {key} ({r:?}), never asked to cancel: {rec:?}"
            );
        }
        if let Some(Ok(tag)) = &a.handle {
            if *tag == key {
                assert_eq!(
                    (rec.fail_runs, rec.started),
                    (u32::from(r.fails), 1),
                    "retried single {key} ({r:?}) completed: {rec:?}"
                );
            }
        }
        if let Some(Err(e)) = &a.handle {
            let n = e.attempts();
            // Cancelled in its backoff: the attempt that failed; queued for the next one (or
            // running it): that one.
            assert!(
                (1..=u32::from(r.max)).contains(&n)
                    && (n == rec.fail_runs || n == rec.fail_runs + 1),
                "retried single {key} ({r:?}): {e} after {} failing attempts",
                rec.fail_runs
            );
            assert_eq!(matches!(e, TaskError::Retried { .. }), n > 1, "{e:?}");
            if !asked {
                assert_eq!(n, u32::from(r.max), "retried single {key} ({r:?}): {e}");
            }
            if n > 1 {
                crate::cover("a retried task ended with TaskError::Retried");
            }
        }
    }

    /// Retries counted, per retried task: exact once it behaved or was never asked to
    /// cancel; else the attempt it was cancelled in (or after) may or may not have been
    /// given another.
    fn retried_bounds(&self, tracer: &BTreeMap<u64, Rec>) -> (u64, u64) {
        let (mut lo, mut hi) = (0, 0);
        for (k, s) in self.singles.iter().enumerate() {
            let Some(r) = s.retry else { continue };
            let Some(id) = s.id else {
                // Withdrawn (its `spawn_with` dropped while it waited for room): on a runtime
                // with several threads it may have started just before the withdrawing cancel,
                // and failed an attempt or two then. Its record says (found by its kind).
                let runs = tracer
                    .values()
                    .filter(|rec| rec.kind == Some(Kind::Single(k)))
                    .map(|rec| u64::from(rec.fail_runs))
                    .sum::<u64>();
                hi += runs.min(u64::from(r.max) - 1);
                continue;
            };
            let Some(rec) = tracer.get(&id) else { continue };
            let runs = u64::from(rec.fail_runs);
            if rec.started > 0 {
                lo += u64::from(r.fails);
                hi += u64::from(r.fails);
            } else {
                lo += runs.saturating_sub(1);
                hi += runs.min(u64::from(r.max) - 1);
            }
        }
        (lo, hi)
    }

    /// Counters since the last flush: exact where the model knows on which side of the flush
    /// a task ended, bounded where it ended during the flush.
    fn check_counters(
        &self,
        st: &PoolStats,
        tracer: &BTreeMap<u64, Rec>,
        single_ids: &[u64],
        group_final: &[Option<GroupSummary>],
    ) {
        let cat = |o: Outcome| match o {
            Outcome::Completed => 0,
            Outcome::Cancelled => 1,
            Outcome::Panicked => 2,
            Outcome::TimedOut => 3,
            Outcome::Shed => 4,
        };
        let mut lo = [0u64; 5];
        let mut amb = [0u64; 5];
        let by_id = |id: u64, lo: &mut [u64; 5], amb: &mut [u64; 5]| {
            let c = cat(outcome_of(&tracer[&id]));
            match &self.flush {
                None => lo[c] += 1,
                Some(f) if f.live2.contains(&id) || id >= f.sub2 => lo[c] += 1,
                Some(f) if id < f.sub1 && !f.live1.contains(&id) => {}
                Some(_) => amb[c] += 1,
            }
        };
        for &id in single_ids {
            by_id(id, &mut lo, &mut amb);
        }
        let parts = |s: &GroupSummary| [s.completed, s.cancelled, s.panicked, s.timed_out, s.shed];
        for (g, fin) in group_final.iter().enumerate() {
            let zero = Some(GroupSummary::default());
            // A group made after the flush had nothing before it.
            let (a, b) = match &self.flush {
                None => (zero, zero),
                Some(f) => (
                    f.a.get(g).copied().unwrap_or(zero),
                    f.b.get(g).copied().unwrap_or(zero),
                ),
            };
            match (fin, a, b) {
                (Some(fin), Some(a), Some(b)) => {
                    for c in 0..5 {
                        lo[c] += parts(fin)[c] - parts(&b)[c];
                        amb[c] += parts(&b)[c] - parts(&a)[c];
                    }
                }
                // Detached before the flush: its items may have ended on either side of it.
                (Some(fin), _, _) => {
                    for (amb, part) in amb.iter_mut().zip(parts(fin)) {
                        *amb += part;
                    }
                }
                // Its `Group` was dropped: item by item, as loose tasks.
                (None, _, _) => {
                    for (&id, r) in tracer {
                        if r.kind == Some(Kind::Item(g)) {
                            by_id(id, &mut lo, &mut amb);
                        }
                    }
                }
            }
        }
        let got = [
            st.ended - st.cancelled - st.panicked - st.timed_out - st.dropped - st.shed,
            st.cancelled,
            st.panicked,
            st.timed_out,
            st.shed,
        ];
        for c in 0..5 {
            assert!(
                lo[c] <= got[c] && got[c] <= lo[c] + amb[c],
                "{} counter is {}, model says {}..={}: {st:?}",
                ["completed", "cancelled", "panicked", "timed_out", "shed"][c],
                got[c],
                lo[c],
                lo[c] + amb[c]
            );
        }
        assert_eq!(st.dropped, 0, "{st:?}");
        // Retries: since the last flush, so bounded above only once there was one.
        let (rlo, rhi) = self.retried_bounds(tracer);
        let rlo = if self.flush.is_some() { 0 } else { rlo };
        assert!(
            rlo <= st.retried && st.retried <= rhi,
            "retried counter is {}, model says {rlo}..={rhi}: {st:?}",
            st.retried
        );
    }
}
