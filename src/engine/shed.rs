//! Queue deadlines (`max_queue_wait`): work that could not start in time is shed, ending as
//! `TaskError::Shed` instead of starting late.
//!
//! No clock is read: the deadline is a timer on the pool's runtime ([`Spawner::sleep`]), so
//! it follows that runtime's time (tokio's paused clock in tests included).
//!
//! - A loose task that has to queue gets one timer, a small runtime task that waits for the
//!   deadline or for the task to leave the queue, whichever comes first (leaving disarms it
//!   and ends it at once: timers live only while their tasks wait). At the deadline, a task
//!   still queued leaves the queue and ends as shed: its `on_end` callback runs, its handle
//!   resolves. A task that starts at once never has a timer.
//! - A group gets one timer at its launch. At the deadline the group is *shed*: from then on
//!   each item that has not started ends as shed when a worker reaches it, without its
//!   closure being called (an item waiting for its group's turn ends at once). Shed items take
//!   no time, so a worker sheds them back to back in its slot without giving up its turn; a
//!   group with no worker then gets one at once, over the limit if the pool is full (it
//!   gives the slot back when it is through). The items running are not touched. An item
//!   with callbacks frees its worker's slot before they run, as any item does: the next one
//!   is shed at the group's next turn.
//!
//! The timer task holds the pool weakly: a pool whose handles are all gone is not kept alive
//! by its deadlines.
//!
//! [`Spawner::sleep`]: async_taskpool_runtime::Spawner::sleep

use super::core::{After, Core, Outcome, Seat, Start, State};
use super::lanes::GroupKey;
use super::timer::QueueTimer;
use crate::id::TaskId;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// What a timer sheds when it fires.
#[derive(Clone, Copy)]
enum Target {
    Task(TaskId),
    Group(GroupKey),
}

impl Core {
    /// Starts the deadline of loose task `id`, which just queued.
    pub(crate) fn arm_task_deadline(
        self: &Arc<Self>,
        id: TaskId,
        wait: Duration,
        timer: Arc<QueueTimer>,
    ) {
        self.arm(Target::Task(id), wait, timer);
    }

    /// Starts the deadline of group `key`, just launched.
    pub(crate) fn arm_group_deadline(
        self: &Arc<Self>,
        key: GroupKey,
        wait: Duration,
        timer: Arc<QueueTimer>,
    ) {
        self.arm(Target::Group(key), wait, timer);
    }

    fn arm(self: &Arc<Self>, target: Target, wait: Duration, timer: Arc<QueueTimer>) {
        let sleep = self.spawner.sleep(wait);
        let pool = Arc::downgrade(self);
        self.spawn(Box::pin(async move {
            let fired = timer.sleep(sleep).await;
            if fired {
                shed(&pool, target);
            }
        }));
    }
}

/// The deadline passed: sheds what still waits.
fn shed(pool: &Weak<Core>, target: Target) {
    let Some(core) = pool.upgrade() else {
        return;
    };
    {
        let mut s = core.section();
        let (st, after, c) = s.split();
        match target {
            Target::Task(id) => st.shed_queued(id, c, after),
            Target::Group(key) => st.shed_group(key, c, after),
        }
    }
    core.let_go();
}

impl State {
    /// Sheds loose task `id` if it still waits in the queue: it leaves the queue and ends,
    /// without a slot, as shed (its callbacks run, its handle resolves).
    pub(crate) fn shed_queued(&mut self, id: TaskId, core: &Arc<Core>, after: &mut After) {
        let Some((priority, ticket)) = self.loose.find(id.get()) else {
            return;
        };
        let task = self
            .loose
            .take(priority, ticket)
            .expect("found")
            .into_inner();
        task.mark_shed();
        self.insert_ending(id, task.clone().control(), false);
        let job = task.launch(core, id, Seat::Unseated);
        after.start(Start::Job(job), None);
        after.notify = true;
    }

    /// Group `key`'s deadline passed: the items that have not started are shed as its workers
    /// reach them; an item waiting for the group's turn ends at once. Running items go on.
    pub(crate) fn shed_group(&mut self, key: GroupKey, core: &Arc<Core>, after: &mut After) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if g.cancelled || g.settled || g.shed {
            return;
        }
        g.shed = true;
        // Shed items take no token: items set aside for one end now, the limit goes.
        self.end_aside(key, Outcome::Shed, core, after);
        self.drop_rate(key, after);
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        let Some(driver) = g.driver.as_ref() else {
            return;
        };
        driver.shed();
        if let Some(Some(w)) = &g.parked_puller {
            after.wake(Some(w.clone()));
        }
        if g.workers == 0 && g.has_input() {
            // Nothing of it runs: a worker starts now to shed what is left, without waiting
            // for a turn, over the limit if need be (shedding takes no time; the slot comes
            // back when the worker is through, or waits on its input).
            let job = Arc::clone(driver).worker(core, None).job;
            self.take_slot();
            self.worker_in(key);
            let runner = self.idle_runner();
            after.start(Start::Job(job), runner);
        }
    }
}
