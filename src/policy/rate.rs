//! Rate limits with GCRA (the generic cell rate algorithm): a [`Quota`], a [`RateLimit`] and
//! a [`KeyedRateLimit`] (one limit per key, e.g. per host).
//!
//! GCRA keeps one instant per limit, the *theoretical arrival time* (TAT): when the next
//! start would be due if starts came exactly at the quota's rate. A start at `now` conforms
//! if `TAT - tolerance <= now`, where the tolerance is `interval × (burst - 1)`; it then
//! moves the TAT to `max(TAT, now) + interval`. A refused start learns the earliest instant
//! it would conform, `TAT - tolerance`, so the caller can sleep exactly that long. This is
//! the algorithm and the semantics of the `governor` crate, with the time passed in.

use super::PolicyError;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How many starts per period, and how many at once: `count` per `period` on average (one
/// every `period / count`, the *interval*), with bursts of up to `burst` back to back after
/// a quiet spell.
///
/// The burst defaults to `count`, as in `governor`. Over any window of length `w`, at most
/// `burst + w / interval` starts conform; `burst(1)` spaces every start by the interval.
///
/// ```
/// use async_taskpool::policy::Quota;
/// use std::time::Duration;
/// let q = Quota::new(10, Duration::from_secs(1))?;            // 10 per second, burst 10
/// assert_eq!(q.interval(), Duration::from_millis(100));
/// assert_eq!(q.max_burst(), 10);
/// let polite = Quota::per_second(2)?.burst(1)?;                // one every 500 ms, no burst
/// assert_eq!(polite.max_burst(), 1);
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    interval: Duration,
    burst: u32,
}

impl Quota {
    /// `count` starts per `period`, burst `count`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] if `count` is 0 or `period / count` is less than a
    /// nanosecond.
    ///
    /// ```
    /// use async_taskpool::policy::Quota;
    /// use std::time::Duration;
    /// assert!(Quota::new(3, Duration::from_secs(1)).is_ok());
    /// assert!(Quota::new(3, Duration::ZERO).is_err());
    /// ```
    pub fn new(count: u32, period: Duration) -> Result<Quota, PolicyError> {
        if count == 0 {
            return Err(PolicyError::invalid(
                "quota count",
                0,
                "it must be at least 1 (to stop all work, lock the pool instead)",
            ));
        }
        let interval = period / count;
        if interval.is_zero() {
            return Err(PolicyError::invalid(
                "quota period",
                (count, period),
                "count per period must leave at least 1 ns between starts: give a longer period or a smaller count",
            ));
        }
        Ok(Quota {
            interval,
            burst: count,
        })
    }

    /// `count` starts per second, burst `count`.
    ///
    /// ```
    /// let q = async_taskpool::policy::Quota::per_second(4)?;
    /// assert_eq!(q.interval(), std::time::Duration::from_millis(250));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn per_second(count: u32) -> Result<Quota, PolicyError> {
        Quota::new(count, Duration::from_secs(1))
    }

    /// `count` starts per minute, burst `count`.
    ///
    /// ```
    /// let q = async_taskpool::policy::Quota::per_minute(30)?;
    /// assert_eq!(q.interval(), std::time::Duration::from_secs(2));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn per_minute(count: u32) -> Result<Quota, PolicyError> {
        Quota::new(count, Duration::from_secs(60))
    }

    /// The same rate with bursts of up to `burst` starts back to back.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] if `burst` is 0.
    ///
    /// ```
    /// use async_taskpool::policy::Quota;
    /// let q = Quota::per_second(100)?.burst(5)?;
    /// assert_eq!((q.max_burst(), q.interval()), (5, std::time::Duration::from_millis(10)));
    /// assert!(Quota::per_second(100)?.burst(0).is_err());
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn burst(self, burst: u32) -> Result<Quota, PolicyError> {
        if burst == 0 {
            return Err(PolicyError::invalid(
                "quota burst",
                0,
                "it must be at least 1 (1: starts spaced by the interval, no burst)",
            ));
        }
        Ok(Quota { burst, ..self })
    }

    /// The time between starts at the sustained rate.
    ///
    /// ```
    /// let q = async_taskpool::policy::Quota::per_second(1)?;
    /// assert_eq!(q.interval(), std::time::Duration::from_secs(1));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The most starts allowed back to back.
    ///
    /// ```
    /// assert_eq!(async_taskpool::policy::Quota::per_second(7)?.max_burst(), 7);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn max_burst(&self) -> u32 {
        self.burst
    }

    /// A TAT under this quota, carried over to `to` at `now`: the starts it still owes (how
    /// far it runs ahead of now, in intervals) are owed under the new quota's interval.
    fn carry(&self, tat: Instant, now: Instant, to: &Quota) -> Instant {
        let owed = tat.saturating_duration_since(now).as_nanos();
        if owed == 0 {
            return tat;
        }
        let scaled = owed * to.interval.as_nanos() / self.interval.as_nanos().max(1);
        let scaled = Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX));
        now.checked_add(scaled).unwrap_or(tat)
    }

    /// GCRA's tolerance: how far the TAT may run ahead of now.
    fn tolerance(&self) -> Duration {
        self.interval.saturating_mul(self.burst - 1)
    }

    /// One GCRA decision: the new TAT if a start at `now` conforms, else the earliest
    /// instant it would.
    fn decide(&self, tat: Option<Instant>, now: Instant) -> Result<Instant, Instant> {
        let tat = tat.map_or(now, |t| t.max(now));
        let tolerance = self.tolerance();
        match now.checked_add(tolerance) {
            // `tat > now + tolerance`, so `tat - tolerance > now`: no underflow.
            Some(latest) if tat > latest => Err(tat - tolerance),
            _ => Ok(tat.checked_add(self.interval).unwrap_or(tat)),
        }
    }
}

/// One rate limit (GCRA): may a start happen now, and if not, when?
///
/// It keeps one `Instant`; every call is a few comparisons, allocates nothing and takes no
/// lock (it is `&mut self`: the caller's lock, if any, serialises calls).
///
/// ```
/// use async_taskpool::policy::{Quota, RateLimit};
/// use std::time::{Duration, Instant};
/// let mut limit = RateLimit::new(Quota::per_second(10)?.burst(2)?);
/// let t0 = Instant::now();
/// assert_eq!(limit.try_acquire(t0), Ok(()));
/// assert_eq!(limit.try_acquire(t0), Ok(()));                       // the burst of 2
/// let next = limit.try_acquire(t0).unwrap_err();                   // then one per 100 ms
/// assert_eq!(next, t0 + Duration::from_millis(100));
/// assert_eq!(limit.try_acquire(next), Ok(()));
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RateLimit {
    quota: Quota,
    tat: Option<Instant>,
}

impl RateLimit {
    /// A limit with a full burst available.
    ///
    /// ```
    /// use async_taskpool::policy::{Quota, RateLimit};
    /// let limit = RateLimit::new(Quota::per_minute(60)?);
    /// assert_eq!(limit.quota().max_burst(), 60);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn new(quota: Quota) -> Self {
        Self { quota, tat: None }
    }

    /// Takes one start at `now` if the quota allows it; else returns the earliest instant
    /// it would (later than `now`), and changes nothing.
    ///
    /// `now` should not go backwards between calls; if it does, the call is judged as if
    /// made at the latest instant seen (a refusal, never an extra start).
    ///
    /// ```
    /// use async_taskpool::policy::{Quota, RateLimit};
    /// use std::time::{Duration, Instant};
    /// let mut limit = RateLimit::new(Quota::per_second(1)?);
    /// let t0 = Instant::now();
    /// limit.try_acquire(t0).unwrap();
    /// assert_eq!(limit.try_acquire(t0 + Duration::from_millis(400)), Err(t0 + Duration::from_secs(1)));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        self.tat = Some(self.quota.decide(self.tat, now)?);
        Ok(())
    }

    /// The earliest instant, `now` or later, at which a start would be allowed; takes
    /// nothing.
    ///
    /// ```
    /// use async_taskpool::policy::{Quota, RateLimit};
    /// use std::time::{Duration, Instant};
    /// let mut limit = RateLimit::new(Quota::per_second(2)?.burst(1)?);
    /// let t0 = Instant::now();
    /// assert_eq!(limit.available_at(t0), t0);
    /// limit.try_acquire(t0).unwrap();
    /// assert_eq!(limit.available_at(t0), t0 + Duration::from_millis(500));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn available_at(&self, now: Instant) -> Instant {
        self.quota
            .decide(self.tat, now)
            .map_or_else(|at| at, |_| now)
    }

    /// The quota in force.
    ///
    /// ```
    /// use async_taskpool::policy::{Quota, RateLimit};
    /// let q = Quota::per_second(3)?;
    /// assert_eq!(RateLimit::new(q).quota(), q);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Changes the quota from now on. Starts already taken keep counting against it: after
    /// a burst, a stricter quota makes the next start wait longer, never shorter.
    ///
    /// ```
    /// use async_taskpool::policy::{Quota, RateLimit};
    /// let mut limit = RateLimit::new(Quota::per_second(3)?);
    /// limit.set_quota(Quota::per_second(30)?);
    /// assert_eq!(limit.quota().max_burst(), 30);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn set_quota(&mut self, quota: Quota) {
        self.quota = quota;
    }

    /// Changes the quota at `now`, carrying over what was taken as a number of starts: the
    /// starts still owed under the old quota are owed under the new one's interval (a looser
    /// quota makes the next start sooner, a stricter one later). For run-time changes
    /// (`Group::set_rate_limit`), where a wait set by a slow quota should not outlive it.
    pub(crate) fn set_quota_at(&mut self, quota: Quota, now: Instant) {
        self.tat = self.tat.map(|t| self.quota.carry(t, now, &quota));
        self.quota = quota;
    }
}

/// The fewest keys a [`KeyedRateLimit`] holds before it sweeps out expired ones.
const MIN_SWEEP: usize = 64;

/// One GCRA rate limit per key (per host, per tenant, ...), all with the same quota.
///
/// A key that waits does not hold up another: each key has its own TAT. A key unknown to
/// the limit starts with a full burst.
///
/// **Memory.** A key's state expires when its TAT passes: from then on it is no different
/// from a key never seen, so it is dropped. That is at most `burst × interval` after the
/// key's last start. Expired keys are swept out when a new key would grow the map past a
/// threshold, which is then set to twice the keys left (at least 64): the map holds at most
/// twice the keys active at the last sweep (or 64), a sweep costs amortised O(1) per new
/// key, and memory is given back when most keys expired. [`retain_active`](Self::retain_active)
/// sweeps on demand.
///
/// Calls are `&mut self` and take no lock. A known key costs one hash lookup and allocates
/// nothing; a new key costs an insert (the key is cloned from the borrowed form then) and
/// now and then a sweep, which drops expired keys (their `Drop` runs).
///
/// ```
/// use async_taskpool::policy::{KeyedRateLimit, Quota};
/// use std::time::{Duration, Instant};
/// let mut per_host = KeyedRateLimit::<String>::new(Quota::per_second(1)?);
/// let t0 = Instant::now();
/// assert_eq!(per_host.try_acquire("a.example", t0), Ok(()));
/// assert_eq!(per_host.try_acquire("b.example", t0), Ok(()));        // another key: its own quota
/// assert_eq!(per_host.try_acquire("a.example", t0), Err(t0 + Duration::from_secs(1)));
/// assert_eq!(per_host.len(), 2);
/// per_host.retain_active(t0 + Duration::from_secs(1));               // both expired
/// assert!(per_host.is_empty());
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyedRateLimit<K> {
    quota: Quota,
    tats: HashMap<K, Instant>,
    sweep_at: usize,
}

impl<K: Hash + Eq> KeyedRateLimit<K> {
    /// A keyed limit with no key yet.
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// let limit = KeyedRateLimit::<u64>::new(Quota::per_second(5)?);
    /// assert!(limit.is_empty());
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            tats: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }

    /// Takes one start for `key` at `now` if its quota allows it; else returns the earliest
    /// instant it would, and changes nothing.
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// use std::time::Instant;
    /// let mut limit = KeyedRateLimit::<(String, u16)>::new(Quota::per_second(1)?);
    /// let now = Instant::now();
    /// assert!(limit.try_acquire(&("example.org".to_string(), 443), now).is_ok());
    /// assert!(limit.try_acquire(&("example.org".to_string(), 443), now).is_err());
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn try_acquire<Q>(&mut self, key: &Q, now: Instant) -> Result<(), Instant>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(tat) = self.tats.get_mut(key) {
            *tat = self.quota.decide(Some(*tat), now)?;
            return Ok(());
        }
        // A new key starts from a full burst: the first start always conforms.
        let tat = self.quota.decide(None, now)?;
        if self.tats.len() >= self.sweep_at {
            self.retain_active(now);
        }
        self.tats.insert(key.to_owned(), tat);
        Ok(())
    }

    /// The earliest instant, `now` or later, at which `key` could start; takes nothing.
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// use std::time::Instant;
    /// let limit = KeyedRateLimit::<String>::new(Quota::per_second(1)?);
    /// let now = Instant::now();
    /// assert_eq!(limit.available_at("never-seen", now), now);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn available_at<Q>(&self, key: &Q, now: Instant) -> Instant
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tat = self.tats.get(key).copied();
        self.quota.decide(tat, now).map_or_else(|at| at, |_| now)
    }

    /// Drops the keys whose state expired by `now` (they behave exactly like unknown keys),
    /// and gives back the memory most of the map no longer needs. O(keys).
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// use std::time::{Duration, Instant};
    /// let mut limit = KeyedRateLimit::<u32>::new(Quota::per_second(10)?.burst(1)?);
    /// let t0 = Instant::now();
    /// limit.try_acquire(&1, t0).unwrap();
    /// limit.retain_active(t0 + Duration::from_millis(99));
    /// assert_eq!(limit.len(), 1);
    /// limit.retain_active(t0 + Duration::from_millis(100));
    /// assert_eq!(limit.len(), 0);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn retain_active(&mut self, now: Instant) {
        self.tats.retain(|_, tat| *tat > now);
        let live = self.tats.len();
        self.sweep_at = (live * 2).max(MIN_SWEEP);
        if self.tats.capacity() > self.sweep_at * 2 {
            self.tats.shrink_to(self.sweep_at);
        }
    }

    /// Keys held (active ones, plus expired ones not yet swept).
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// assert_eq!(KeyedRateLimit::<u8>::new(Quota::per_second(1)?).len(), 0);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    /// Whether no key is held.
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// assert!(KeyedRateLimit::<u8>::new(Quota::per_second(1)?).is_empty());
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }

    /// The quota every key has.
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// let q = Quota::per_second(2)?;
    /// assert_eq!(KeyedRateLimit::<u8>::new(q).quota(), q);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Changes every key's quota from now on; starts already taken keep counting.
    ///
    /// ```
    /// use async_taskpool::policy::{KeyedRateLimit, Quota};
    /// let mut limit = KeyedRateLimit::<u8>::new(Quota::per_second(2)?);
    /// limit.set_quota(Quota::per_second(20)?);
    /// assert_eq!(limit.quota().max_burst(), 20);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn set_quota(&mut self, quota: Quota) {
        self.quota = quota;
    }

    /// [`RateLimit::set_quota_at`] for every key. O(keys).
    pub(crate) fn set_quota_at(&mut self, quota: Quota, now: Instant) {
        let old = self.quota;
        for tat in self.tats.values_mut() {
            *tat = old.carry(*tat, now, &quota);
        }
        self.quota = quota;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let mut limit = RateLimit::new(Quota::per_second(10).unwrap().burst(3).unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.try_acquire(t0), Ok(()));
        }
        assert_eq!(limit.try_acquire(t0), Err(t0 + ms(100)));
        assert_eq!(limit.try_acquire(t0 + ms(99)), Err(t0 + ms(100)));
        assert_eq!(limit.try_acquire(t0 + ms(100)), Ok(()));
        assert_eq!(limit.try_acquire(t0 + ms(100)), Err(t0 + ms(200)));
        // A quiet spell refills the burst, never more than it.
        let later = t0 + ms(10_000);
        for _ in 0..3 {
            assert_eq!(limit.try_acquire(later), Ok(()));
        }
        assert!(limit.try_acquire(later).is_err());
    }

    #[test]
    fn a_refusal_changes_nothing() {
        let mut limit = RateLimit::new(Quota::per_second(1).unwrap());
        let t0 = Instant::now();
        limit.try_acquire(t0).unwrap();
        for _ in 0..100 {
            assert_eq!(limit.try_acquire(t0 + ms(10)), Err(t0 + ms(1000)));
        }
        assert_eq!(limit.try_acquire(t0 + ms(1000)), Ok(()));
    }

    #[test]
    fn time_going_backwards_never_grants_an_extra_start() {
        let mut limit = RateLimit::new(Quota::per_second(1).unwrap());
        let t0 = Instant::now() + ms(5000);
        limit.try_acquire(t0).unwrap();
        assert!(limit.try_acquire(t0 - ms(3000)).is_err());
    }

    #[test]
    fn over_any_window_at_most_burst_plus_window_over_interval_starts() {
        let quota = Quota::per_second(20).unwrap().burst(4).unwrap(); // 50 ms interval
        let mut limit = RateLimit::new(quota);
        let t0 = Instant::now();
        // Try every millisecond for 2 s.
        let starts: Vec<u64> = (0..2000)
            .filter(|&t| limit.try_acquire(t0 + ms(t)).is_ok())
            .collect();
        for (i, &from) in starts.iter().enumerate() {
            let window = 500;
            let within = starts[i..]
                .iter()
                .take_while(|&&t| t < from + window)
                .count() as u64;
            assert!(
                within <= 4 + window / 50,
                "{within} starts in 500 ms from {from}"
            );
        }
        // The burst at 0..=3 ms, then one every 50 ms from 50 to 1950 ms.
        assert_eq!(starts[..5], [0, 1, 2, 3, 50]);
        assert_eq!(starts.len(), 4 + 39);
    }

    #[test]
    fn keys_do_not_share_a_quota() {
        let mut limit = KeyedRateLimit::<String>::new(Quota::per_second(1).unwrap());
        let t0 = Instant::now();
        assert!(limit.try_acquire("a", t0).is_ok());
        assert!(limit.try_acquire("a", t0).is_err());
        assert!(limit.try_acquire("b", t0).is_ok());
        assert_eq!(limit.available_at("a", t0), t0 + ms(1000));
        assert_eq!(limit.available_at("c", t0), t0);
    }

    #[test]
    fn keyed_memory_stays_bounded_by_the_active_keys() {
        // 200,000 distinct keys, one every 10 µs, each expiring 1 ms after its start: at
        // most ~100 are active at once, and the map never holds more than the bound.
        let mut limit =
            KeyedRateLimit::<u64>::new(Quota::per_second(1000).unwrap().burst(1).unwrap());
        let t0 = Instant::now();
        let mut most = 0;
        for k in 0..200_000u64 {
            let now = t0 + Duration::from_micros(10 * k);
            assert!(limit.try_acquire(&k, now).is_ok());
            most = most.max(limit.len());
        }
        assert!(
            (64..=2 * 101 + 1).contains(&most),
            "held at most {most} keys"
        );
        assert!(limit.tats.capacity() <= 4 * MIN_SWEEP.max(2 * 101) + 64);
        // Once everything expired, a sweep gives the memory back.
        limit.retain_active(t0 + Duration::from_secs(60));
        assert!(limit.is_empty());
        assert!(limit.tats.capacity() <= 2 * MIN_SWEEP);
    }

    #[test]
    fn an_expired_key_behaves_like_a_new_one() {
        let quota = Quota::per_second(10).unwrap().burst(3).unwrap();
        let mut swept = KeyedRateLimit::<u8>::new(quota);
        let mut kept = KeyedRateLimit::<u8>::new(quota);
        let t0 = Instant::now();
        for limit in [&mut swept, &mut kept] {
            for _ in 0..3 {
                limit.try_acquire(&1, t0).unwrap();
            }
        }
        let later = t0 + ms(300);
        swept.retain_active(later);
        assert!(swept.is_empty());
        for step in 0..10 {
            let now = later + ms(step * 7);
            assert_eq!(swept.try_acquire(&1, now), kept.try_acquire(&1, now));
        }
    }

    #[test]
    fn a_quota_changed_at_run_time_carries_the_starts_owed() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(Quota::per_minute(1).unwrap().burst(1).unwrap());
        limit.try_acquire(t0).unwrap();
        // One start owed for the rest of the minute: under 10/s, for 100 ms from the change.
        limit.set_quota_at(
            Quota::per_second(10).unwrap().burst(1).unwrap(),
            t0 + ms(30_000),
        );
        assert_eq!(limit.available_at(t0 + ms(30_000)), t0 + ms(30_050));
        // Back to a stricter one: the owed start counts as one again.
        let mut keyed = KeyedRateLimit::<u8>::new(Quota::per_second(10).unwrap().burst(1).unwrap());
        keyed.try_acquire(&1, t0).unwrap();
        keyed.set_quota_at(Quota::per_second(1).unwrap().burst(1).unwrap(), t0);
        assert_eq!(keyed.available_at(&1, t0), t0 + ms(1000));
        assert_eq!(keyed.available_at(&2, t0), t0);
    }

    #[test]
    fn bad_quotas_are_refused() {
        assert!(Quota::new(0, Duration::from_secs(1)).is_err());
        assert!(Quota::new(10, Duration::from_nanos(9)).is_err());
        assert!(Quota::new(10, Duration::from_nanos(10)).is_ok());
        assert!(Quota::per_second(1).unwrap().burst(0).is_err());
        // Huge bursts and intervals saturate instead of overflowing.
        let mut limit = RateLimit::new(
            Quota::new(1, Duration::MAX)
                .unwrap()
                .burst(u32::MAX)
                .unwrap(),
        );
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(limit.try_acquire(t0).is_ok());
        }
    }

    /// governor (the reference GCRA crate) as an oracle: on any quota and any arrival
    /// sequence, both allow the same starts and name the same earliest instant.
    mod against_governor {
        use super::*;
        use governor::clock::FakeRelativeClock;
        use std::num::NonZeroU32;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
            #[test]
            fn same_decisions_and_same_earliest_instants(
                interval_us in 1u64..50_000,
                burst in 1u32..20,
                steps in proptest::collection::vec((0u64..30_000, 0u8..3), 1..300),
            ) {
                let interval = Duration::from_micros(interval_us);
                let ours = Quota::new(1, interval).unwrap().burst(burst).unwrap();
                let theirs = governor::Quota::with_period(interval)
                    .unwrap()
                    .allow_burst(NonZeroU32::new(burst).unwrap());
                let clock = FakeRelativeClock::default();
                let reference = governor::RateLimiter::hashmap_with_clock(theirs, clock.clone());
                let mut limit = KeyedRateLimit::<u8>::new(ours);
                let t0 = Instant::now();
                let mut elapsed = Duration::ZERO;
                for (gap_us, key) in steps {
                    let gap = Duration::from_micros(gap_us);
                    clock.advance(gap);
                    elapsed += gap;
                    let got = limit.try_acquire(&key, t0 + elapsed);
                    let want = reference
                        .check_key(&key)
                        .map_err(|not_until| t0 + Duration::from(not_until.earliest_possible()));
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
