//! Steer a live pool from outside: a control server on TCP or a Unix socket, and its client.
//!
//! A [`ControlServer`] lets an operator start, stop, resize, lock and inspect a running
//! [`TaskPool`](crate::TaskPool) or [`SimpleTaskPool`](crate::SimpleTaskPool) from another
//! terminal, with the `taskpool-ctl` binary (feature `cli`), with asyncio-taskpool's own
//! Python client (`python -m asyncio_taskpool.control tcp HOST PORT`), or from any language
//! with a socket: the protocol is one JSON object per line each way, documented in
//! `PROTOCOL.md`. The commands are asyncio-taskpool's (`pool-size`, `start`, `stop`,
//! `cancel`, `lock`, `flush`, ...), plus `stats`, a paged `tasks`, and any the program adds
//! with [`ControlServer::command`].
//!
//! ```
//! # #[cfg(feature = "tokio")] {
//! # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! use async_taskpool::control::{protocol::Command, ControlClient, ControlServer};
//! use async_taskpool::{runtime::TokioSpawner, SimpleTaskPool};
//!
//! let workers = SimpleTaskPool::builder(TokioSpawner::current(), || std::future::pending::<()>())
//!     .name("workers")
//!     .build()?;
//! let server = ControlServer::new(&workers).serve_tcp("127.0.0.1:0")?;
//!
//! // Elsewhere: `taskpool-ctl tcp 127.0.0.1 PORT -- start 3`, or in Rust:
//! let addr = server.local_addr().unwrap();
//! let mut ctl = tokio::task::spawn_blocking(move || ControlClient::connect_tcp(addr, None)).await??;
//! let reply = tokio::task::spawn_blocking(move || ctl.request(&Command::Start { num: 3 })).await??;
//! assert!(!reply.is_error());
//! assert_eq!(workers.num_running() + workers.num_queued(), 3);
//! server.shutdown();
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # }).unwrap(); }
//! ```
//!
//! See [`ControlServer`] for how it runs (std sockets on its own threads, whatever the
//! runtime) and what it guarantees.

mod admission;
mod bounds;
mod client;
mod custom;
mod dispatch;
mod hangup;
mod jobs;
mod line;
mod pages;
pub mod protocol;
mod server;
mod session;
mod settings;
mod shape;
mod target;
pub mod text;
mod transport;

pub use client::{ClientError, ControlClient};
pub use server::{ControlError, ControlServer, ServerHandle};
pub use target::ControlTarget;
