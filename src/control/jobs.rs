//! Named job factories: the only code `apply` and `map` can run. Nothing is evaluated or
//! loaded from the wire; a request names a factory and gives JSON for its typed argument.

use super::protocol::{ErrorKind, WireError};
use crate::TaskPool;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// What a request asks of a job.
pub(crate) enum JobCall {
    Apply {
        args: Value,
        num: usize,
        group: Option<String>,
    },
    Map {
        items: Vec<Value>,
        num_concurrent: usize,
        group: Option<String>,
    },
}

type Launch = dyn Fn(&TaskPool, JobCall) -> Result<String, WireError> + Send + Sync;

#[derive(Clone)]
struct Job {
    launch: Arc<Launch>,
    /// The JSON its argument takes, in words (see `shape`).
    args: String,
}

/// The jobs a server may start, by name.
#[derive(Clone, Default)]
pub(crate) struct Jobs {
    by_name: BTreeMap<String, Job>,
}

fn decode<A: DeserializeOwned>(
    job: &str,
    shape: &str,
    what: &str,
    value: Value,
) -> Result<A, WireError> {
    serde_json::from_value(value).map_err(|e| {
        WireError::new(
            ErrorKind::BadArgs,
            format!("{what} for job `{job}` does not fit its argument ({shape}): {e}"),
        )
    })
}

impl Jobs {
    pub(crate) fn register<A, F, Fut>(&mut self, name: &str, factory: F)
    where
        A: DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let factory = Arc::new(factory);
        let job = name.to_owned();
        let args = super::shape::of::<A>();
        let shape = args.clone();
        let launch = move |pool: &TaskPool, call: JobCall| -> Result<String, WireError> {
            // Every argument is decoded before anything starts: a bad item refuses the
            // whole request instead of leaving a half-started group.
            let group = match call {
                JobCall::Apply { args, num, group } => {
                    let arg: A = decode(&job, &shape, "the argument", args)?;
                    let f = factory.clone();
                    let mut b = pool.build_group();
                    if let Some(g) = group {
                        b = b.name(g);
                    }
                    b.apply(num, move || f(arg.clone()))?.name().to_owned()
                }
                JobCall::Map {
                    items,
                    num_concurrent,
                    group,
                } => {
                    let args: Vec<A> = items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| decode(&job, &shape, &format!("item {i}"), v))
                        .collect::<Result<_, _>>()?;
                    let f = factory.clone();
                    let mut b = pool.build_group();
                    if let Some(g) = group {
                        b = b.name(g);
                    }
                    b.unordered()
                        .map(args, num_concurrent, move |a| f(a))?
                        .name()
                        .to_owned()
                }
            };
            Ok(group)
        };
        let launch = Arc::new(launch);
        self.by_name.insert(name.to_owned(), Job { launch, args });
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Each job's name and the JSON its argument takes.
    pub(crate) fn args(&self) -> BTreeMap<String, String> {
        self.by_name
            .iter()
            .map(|(n, j)| (n.clone(), j.args.clone()))
            .collect()
    }

    pub(crate) fn launch(
        &self,
        pool: &TaskPool,
        name: &str,
        call: JobCall,
    ) -> Result<String, WireError> {
        match self.by_name.get(name) {
            Some(job) => (job.launch)(pool, call),
            None => Err(WireError::new(
                ErrorKind::UnknownJob,
                format!(
                    "no job named `{name}` is registered; known jobs: {}",
                    if self.by_name.is_empty() {
                        "none".to_owned()
                    } else {
                        self.names().join(", ")
                    }
                ),
            )),
        }
    }
}
