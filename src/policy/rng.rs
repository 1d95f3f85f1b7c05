//! The random numbers behind retry jitter: `fastrand`'s generator (wyrand), seedable.

/// A small, fast, non-cryptographic random number generator for jitter.
///
/// [`Rng::new`] seeds from the thread's entropy-seeded generator; [`Rng::with_seed`] gives
/// the same sequence every time, for tests and simulations. Making one allocates nothing.
///
/// ```
/// use async_taskpool::policy::Rng;
/// let mut a = Rng::with_seed(42);
/// let mut b = Rng::with_seed(42);
/// assert_eq!(a.below(1000), b.below(1000));
/// let _fresh = Rng::new();
/// ```
#[derive(Debug, Clone)]
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator with a random seed.
    ///
    /// ```
    /// let mut rng = async_taskpool::policy::Rng::new();
    /// assert!(rng.below(10) < 10);
    /// ```
    pub fn new() -> Self {
        Self(fastrand::Rng::new())
    }

    /// A generator that yields the same sequence for the same seed.
    ///
    /// ```
    /// use async_taskpool::policy::Rng;
    /// assert_eq!(Rng::with_seed(1).below(u64::MAX), Rng::with_seed(1).below(u64::MAX));
    /// ```
    pub fn with_seed(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// A uniform integer in `0..bound` (0 when `bound` is 0).
    ///
    /// ```
    /// let mut rng = async_taskpool::policy::Rng::with_seed(3);
    /// assert!(rng.below(6) < 6);
    /// assert_eq!(rng.below(0), 0);
    /// ```
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.0.u64(..bound)
        }
    }

    /// A uniform integer in `0..=max`.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        self.0.u64(..=max)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}
