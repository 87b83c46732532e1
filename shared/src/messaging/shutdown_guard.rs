//! Works around an apalis 1.0 hang: a job waiting in retry backoff when shutdown starts calls
//! `LifecycleService::poll_ready` after its backoff, which stays `Pending` forever once the
//! worker is shutting down, so the worker never drains and the Monitor waits for its timeout.
//!
//! Placed right after `.retry(..)`, this layer answers ready during shutdown and fails the
//! retry with [`ShutdownInterrupted`], which [`super::consumer::LazyAck`] requeues: the message
//! goes back to its queue (not to `<queue>_error`) and is redelivered after the restart.
//!
//! Shutdown here means the worker is shutting down or the process's shutdown token is
//! cancelled, whichever comes first: the token ends retry backoff waits
//! ([`super::worker::InterruptibleRetry`]) a moment before the monitor tells the workers.

use std::task::{Context, Poll};

use apalis_core::{error::BoxDynError, task::Task, worker::context::WorkerContext};
use futures::{FutureExt, TryFutureExt, future::BoxFuture};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use crate::shutdown::ShutdownInterrupted;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ShutdownGuardLayer {
    shutdown: CancellationToken,
}

impl ShutdownGuardLayer {
    /// A guard that also counts `shutdown` being cancelled as shutting down.
    pub fn new(shutdown: CancellationToken) -> Self {
        ShutdownGuardLayer { shutdown }
    }
}

impl<S> Layer<S> for ShutdownGuardLayer {
    type Service = ShutdownGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShutdownGuard { inner, worker: None, shutdown: self.shutdown.clone() }
    }
}

/// The service of [`ShutdownGuardLayer`].
#[derive(Debug, Clone)]
pub struct ShutdownGuard<S> {
    inner: S,
    // Learned from the first task: the worker injects its context into every task's data.
    worker: Option<WorkerContext>,
    shutdown: CancellationToken,
}

impl<S> ShutdownGuard<S> {
    fn shutting_down(&self) -> bool {
        self.shutdown.is_cancelled() || self.worker.as_ref().is_some_and(WorkerContext::is_shutting_down)
    }
}

impl<S, Args> Service<Task<Args>> for ShutdownGuard<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError> + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.shutting_down() {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        if self.worker.is_none() {
            self.worker = task.data().get::<WorkerContext>().cloned();
        }
        if self.shutting_down() {
            return async { Err(Box::new(ShutdownInterrupted) as BoxDynError) }.boxed();
        }
        self.inner.call(task).map_err(Into::into).boxed()
    }
}
