//! The one error type of the policy blocks: a parameter out of range.

/// A policy was given a parameter it cannot work with.
///
/// The message names the parameter, the value given and what would be accepted.
///
/// ```
/// use async_taskpool::policy::{PolicyError, Quota};
/// let err = Quota::per_second(0).unwrap_err();
/// assert!(matches!(err, PolicyError::Invalid { what: "quota count", .. }));
/// assert_eq!(
///     err.to_string(),
///     "invalid quota count 0: it must be at least 1 (to stop all work, lock the pool instead)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A parameter is out of range.
    #[error("invalid {what} {value}: {expected}")]
    Invalid {
        /// Which parameter.
        what: &'static str,
        /// The value given, as text.
        value: String,
        /// What the parameter accepts, and what to pass instead.
        expected: &'static str,
    },
}

impl PolicyError {
    pub(crate) fn invalid(
        what: &'static str,
        value: impl std::fmt::Debug,
        expected: &'static str,
    ) -> Self {
        Self::Invalid {
            what,
            value: format!("{value:?}"),
            expected,
        }
    }
}
