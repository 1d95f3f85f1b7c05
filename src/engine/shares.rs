//! Whose turn it is when a slot frees: priorities, ageing and weighted shares. Part of
//! [`State`], split out of `core.rs`; the lanes and their ring are in `lanes.rs`.
//!
//! Of the lanes that want a slot (each group; the loose tasks of each priority):
//!
//! 1. **Ageing.** A lane passed over `W` times while it waited (`W` starts went to other
//!    lanes) goes first; among such lanes, the one passed over most, then the earliest in the
//!    ring. It is served once, and counts again from zero. So a lane waiting for a slot is
//!    passed over at most `W + L - 1` times, `L` being the lanes waiting, whatever the
//!    priorities: low priority work cannot starve. `W` is the pool's `ageing` (default
//!    four times the limit, at least 16: about four generations of running tasks).
//! 2. **Priority.** Otherwise the highest priority goes first.
//! 3. **Weighted shares.** Among lanes of that priority, the one holding the fewest slots for
//!    its weight: the least `(held + 1/2) / weight`. The half slot rounds shares the limit
//!    does not divide evenly both ways in turn (a limit of 10 at weights 3:1 alternates 7:3
//!    and 8:2), so busy lanes hold slots in proportion to their weights, within one slot.
//!    With equal weights this is the fewest slots held (max-min fairness).
//! 4. Among lanes equal so far, the one served least for its weight lately (stride
//!    scheduling: each start advances the lane's pass by `1 / weight`; a lane joining the
//!    ring starts at the pass of the lane served last): this is what alternates the rounding
//!    of rule 3. Then the earliest in the ring; the lane served moves to the back (round
//!    robin).
//!
//! The loose tasks hold their slots together, whatever their priorities, with one weight
//! (the pool's `loose_weight`, default 1).
//!
//! With one lane waiting (the usual case) none of this is weighed: it is that lane's turn.

use super::core::State;
use super::lanes::Lane;

/// What the scheduler weighs of a lane that wants a slot.
#[derive(Clone, Copy)]
struct Candidate {
    lane: Lane,
    place: usize,
    held: usize,
    priority: i32,
    weight: u32,
    passed_over: u64,
    pass: u64,
}

/// The place of a lane that competes without being in the ring (see `lane_up`).
pub(super) const OUT_OF_RING: usize = usize::MAX;

/// A start advances its lane's pass by `STRIDE / weight`.
const STRIDE: u64 = 1 << 20;

/// How far a start moves a lane of this weight along (at least 1).
pub(super) fn stride(weight: u32) -> u64 {
    (STRIDE / u64::from(weight.max(1))).max(1)
}

impl Candidate {
    /// Whether this lane goes before `other` (which is earlier in the ring).
    fn beats(&self, other: &Candidate, window: u64) -> bool {
        let (aged, other_aged) = (self.passed_over >= window, other.passed_over >= window);
        if aged != other_aged {
            return aged;
        }
        if aged {
            return self.passed_over > other.passed_over;
        }
        if self.priority != other.priority {
            return self.priority > other.priority;
        }
        // (held + 1/2) / weight, compared without division.
        let mine = (2 * self.held as u128 + 1) * u128::from(other.weight);
        let theirs = (2 * other.held as u128 + 1) * u128::from(self.weight);
        if mine != theirs {
            return mine < theirs;
        }
        self.pass < other.pass
    }
}

impl Lane {
    /// Whether two lanes hold their slots together (the loose tasks of any priority do).
    fn same_holder(self, other: Lane) -> bool {
        match (self, other) {
            (Lane::Loose(_), Lane::Loose(_)) => true,
            (a, b) => a == b,
        }
    }
}

/// The default ageing window for a limit: four times it, at least 16.
pub(crate) fn default_ageing(limit: Option<usize>) -> u64 {
    (limit.unwrap_or(0) as u64).saturating_mul(4).max(16)
}

impl State {
    /// Starts a lane may be passed over before it goes first.
    pub(super) fn ageing_window(&self) -> u64 {
        self.ageing.unwrap_or_else(|| default_ageing(self.limit))
    }

    /// Whether the lane wants a slot now.
    #[inline]
    pub(super) fn wants(&self, lane: Lane) -> bool {
        match lane {
            Lane::Loose(p) => self.loose.level(p).is_some_and(|l| !l.fifo.is_empty()),
            Lane::Group(key) => self.groups.get(key).is_some_and(|g| g.wants_slot()),
        }
    }

    /// The lane as the scheduler weighs it, if it wants a slot. `leaving` is whether the slot
    /// up for grabs is this lane's own (its worker counts out: a group at its cap wants the
    /// slot of its own worker for its next item).
    fn candidate(&self, lane: Lane, place: usize, leaving: bool) -> Option<Candidate> {
        match lane {
            Lane::Loose(p) => {
                let level = self.loose.level(p).filter(|l| !l.fifo.is_empty())?;
                Some(Candidate {
                    lane,
                    place,
                    held: self.slots - self.group_workers,
                    priority: p,
                    weight: self.loose_weight,
                    passed_over: level.passed_over,
                    pass: level.pass,
                })
            }
            Lane::Group(key) => {
                let g = self.groups.get(key)?;
                let workers = g.workers - usize::from(leaving && g.workers > 0);
                if !g.wants_slot_with(workers) {
                    return None;
                }
                Some(Candidate {
                    lane,
                    place,
                    held: workers,
                    priority: g.priority,
                    weight: g.weight,
                    passed_over: g.passed_over,
                    pass: g.pass,
                })
            }
        }
    }

    /// The lane whose turn it is (see the module's rules). `from` is the lane whose slot is
    /// up for grabs (it counts one fewer). Lanes that want none leave the ring. Returns the
    /// lane's place in the ring too, for [`take_turn`](Self::take_turn).
    #[inline]
    pub(super) fn lane_up(&mut self, from: Option<Lane>) -> Option<(Lane, usize)> {
        if self.turns.len() == 0 {
            return None;
        }
        if self.turns.len() == 1 {
            // One lane waits (the usual case): no shares to weigh.
            let lane = self.turns.get(0)?;
            if self.wants(lane) && !self.out_of_ring(from) {
                return Some((lane, 0));
            }
        }
        self.weigh_lanes(from)
    }

    /// [`lane_up`](Self::lane_up) when more than one lane competes (or the one lane wants
    /// nothing more).
    #[inline(never)]
    fn weigh_lanes(&mut self, from: Option<Lane>) -> Option<(Lane, usize)> {
        let from_out_of_ring = self.out_of_ring(from);
        let window = self.ageing_window();
        let mut best: Option<Candidate> = None;
        let mut i = 0;
        while let Some(lane) = self.turns.get(i) {
            let leaving = from.is_some_and(|f| f.same_holder(lane));
            match self.candidate(lane, i, leaving) {
                Some(mut c) => {
                    if leaving && matches!(lane, Lane::Loose(_)) {
                        c.held = c.held.saturating_sub(1);
                    }
                    if best.is_none_or(|b| c.beats(&b, window)) {
                        best = Some(c);
                    }
                    i += 1;
                }
                None => {
                    self.turns.leave(i);
                    self.left_turns(lane);
                }
            }
        }
        if let (Some(lane), true) = (from, from_out_of_ring) {
            if let Some(mut c) = self.candidate(lane, OUT_OF_RING, true) {
                // It was not waiting: no ageing of its own (a count left from an earlier
                // wait must not put it first).
                c.passed_over = 0;
                if best.is_none_or(|b| c.beats(&b, window)) {
                    best = Some(c);
                }
            }
        }
        best.map(|c| (c.lane, c.place))
    }

    /// Whether `from` is a group out of the ring: one whose worker just ended an item, which
    /// competes for that slot for its next item though it wants no more slots than it holds
    /// (it is at its cap).
    #[inline]
    fn out_of_ring(&self, from: Option<Lane>) -> bool {
        match from {
            Some(Lane::Group(key)) => self.groups.get(key).is_some_and(|g| !g.in_turns),
            _ => false,
        }
    }

    /// A lane left the ring (it wants nothing more for now).
    fn left_turns(&mut self, lane: Lane) {
        match lane {
            Lane::Loose(p) => {
                self.loose.level_mut(p).in_turns = false;
                self.loose.forget_if_idle(p);
            }
            Lane::Group(key) => {
                if let Some(g) = self.groups.get_mut(key) {
                    g.in_turns = false;
                }
            }
        }
    }

    /// The lane at `place` took its turn: it moves to the back, and the lanes still waiting
    /// count one more start that passed them over.
    #[inline]
    pub(super) fn take_turn(&mut self, place: usize) {
        if self.turns.len() > 1 || place == OUT_OF_RING {
            self.count_passed_over(place);
            if place != OUT_OF_RING {
                self.turns.took_turn(place);
            }
        }
    }

    fn count_passed_over(&mut self, place: usize) {
        let loose_stride = stride(self.loose_weight);
        let mut i = 0;
        while let Some(lane) = self.turns.get(i) {
            let (passed, pass, step) = match lane {
                Lane::Loose(p) => {
                    let level = self.loose.level_mut(p);
                    (&mut level.passed_over, &mut level.pass, loose_stride)
                }
                Lane::Group(key) => match self.groups.get_mut(key) {
                    Some(g) => (&mut g.passed_over, &mut g.pass, stride(g.weight)),
                    None => {
                        i += 1;
                        continue;
                    }
                },
            };
            if i == place {
                *passed = 0;
                self.pass_clock = *pass;
                *pass += step;
            } else {
                *passed += 1;
            }
            i += 1;
        }
    }
}
