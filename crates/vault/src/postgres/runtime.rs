//! The tokio runtime a PostgreSQL vault owns, and how its synchronous methods wait on it.
//!
//! Every call spawns its work as a task on this runtime and waits on a plain channel for
//! the answer. A plain thread, a `spawn_blocking` thread and even an async task of another
//! runtime may call it: nothing here enters a runtime (`block_on` panics inside one), and
//! the runtime is shut down in the background when dropped, which is allowed anywhere.
//! The price is one hand-over between threads per call, small beside a round trip.

use std::future::Future;

use crate::error::{Error, Result};

/// Worker threads of the runtime: connections are I/O-bound, sealing happens elsewhere.
const WORKER_THREADS: usize = 2;

/// The runtime that drives the backend's connections.
pub struct PgRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl PgRuntime {
    /// A multi-threaded runtime of its own.
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("discreet-postgres")
            .enable_all()
            .build()
            .map_err(|error| Error::Storage {
                detail: format!("starting the PostgreSQL runtime: {error}"),
            })?;
        let handle = runtime.handle().clone();
        Ok(PgRuntime {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `work` on the runtime and waits for its outcome.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = reply.send(work.await);
        });
        answer.recv().map_err(|_| Error::Storage {
            detail: "a PostgreSQL task stopped before it answered".into(),
        })?
    }

    /// Starts `work` on the runtime without waiting for it.
    pub(super) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(work);
    }
}

impl Drop for PgRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
