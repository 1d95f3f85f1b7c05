//! Named job kinds with serde arguments: the only code a worker runs.

use crate::{Backoff, JobContext};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Per-kind options: a run timeout and the backoff between attempts.
///
/// ```
/// use async_taskpool_queue::{Backoff, KindOptions};
/// use std::time::Duration;
/// let options = KindOptions::new()
///     .timeout(Duration::from_secs(30))
///     .backoff(Backoff::exponential(Duration::from_secs(5)));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct KindOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) backoff: Backoff,
}

impl KindOptions {
    /// No timeout, the default [`Backoff`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels a run that takes longer (the pool's task timeout), which then counts as a
    /// failed attempt. Keep it below the worker's lease only if you want; the lease is
    /// extended while the job runs.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wait before each retry.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// A decoded job, ready to run as a pool task; or why its arguments did not decode.
pub(crate) type Start = Result<BoxFuture<'static, Result<(), String>>, String>;
type Launch = dyn Fn(JobContext, &str) -> Start + Send + Sync;

pub(crate) struct Kind {
    pub(crate) name: String,
    pub(crate) launch: Arc<Launch>,
    pub(crate) options: KindOptions,
}

/// The job kinds a worker runs, by name, each with a handler taking a [`JobContext`] and
/// arguments decoded from the job's JSON by serde.
///
/// Nothing from the queue is ever evaluated: a job names a kind and carries JSON. A job
/// whose kind no worker registered stays pending (see [`Worker`](crate::Worker)); one whose
/// arguments do not fit the handler's type is dead at once, with the decoding error.
///
/// This is the same shape as the control server's registered jobs
/// (`ControlServer::register`), but a separate type: a queue handler gets a context and
/// returns a `Result` that decides retries, where a control-server job is any future.
///
/// ```
/// use async_taskpool_queue::{JobContext, KindOptions, Registry};
/// use serde::Deserialize;
/// use std::time::Duration;
///
/// #[derive(Deserialize)]
/// struct Resize { path: String, width: u32 }
///
/// let registry = Registry::new()
///     .register("resize", |_ctx: JobContext, job: Resize| async move {
///         if job.width == 0 { return Err(format!("{}: width 0", job.path)); }
///         Ok(())
///     })
///     .register_with("ping", KindOptions::new().timeout(Duration::from_secs(5)),
///         |_ctx: JobContext, (): ()| async { Ok::<(), String>(()) });
/// assert_eq!(registry.kinds(), ["ping", "resize"]);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) kinds: BTreeMap<String, Arc<Kind>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl Registry {
    /// No kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for jobs of `kind`, with default [`KindOptions`]. Registering a
    /// kind again replaces its handler.
    ///
    /// The handler's error is any `Display` type; it is stored as the attempt's error. `Ok`
    /// completes the job; an error, a panic or a timeout retries it after the kind's backoff,
    /// until its attempts are used up.
    pub fn register<A, F, Fut, E>(self, kind: impl Into<String>, handler: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(JobContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.register_with(kind, KindOptions::default(), handler)
    }

    /// [`register`](Self::register) with options for this kind.
    pub fn register_with<A, F, Fut, E>(
        mut self,
        kind: impl Into<String>,
        options: KindOptions,
        handler: F,
    ) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(JobContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let kind = kind.into();
        let name = kind.clone();
        let handler = Arc::new(handler);
        let launch = move |ctx: JobContext, args: &str| -> Start {
            // Decoded here, so that bad arguments are known before a task is started...
            let args: A = serde_json::from_str(args).map_err(|e| {
                format!(
                    "the arguments of this `{name}` job do not fit its handler's type `{}`: {e}",
                    std::any::type_name::<A>()
                )
            })?;
            // ...and the handler is called inside the task, where a panic is caught.
            let handler = handler.clone();
            Ok(Box::pin(async move {
                handler(ctx, args).await.map_err(|e| e.to_string())
            }))
        };
        self.kinds.insert(
            kind.clone(),
            Arc::new(Kind {
                name: kind,
                launch: Arc::new(launch),
                options,
            }),
        );
        self
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Arc<Kind>> {
        self.kinds.get(kind)
    }
}
