//! What every queue worker shares: its apalis-amqp configuration (matching the topology's
//! declaration exactly), its retry policy, and the restart backoff of its supervisor.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis::layers::retry::{
    BackoffRetryPolicy, HasherRng, RetryPolicy,
    backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff},
};
use apalis_core::task::Task;
use backon::BackoffBuilder;
use futures::{FutureExt, future::BoxFuture};
use tokio_util::sync::CancellationToken;
use tower::retry::Policy;

use super::Topology;
use crate::events::EventType;

/// The apalis-amqp configuration of an event's queue. The declaration (flags and `x-*`
/// arguments) comes from [`Topology`], because RabbitMQ refuses a re-declaration that differs
/// (`PRECONDITION_FAILED`) and apalis-amqp re-declares the queue whenever a worker starts.
/// `prefetch` bounds how many messages the worker holds at once, and so its concurrency.
pub fn amqp_config(topology: &Topology, event: EventType, prefetch: u16) -> apalis_amqp::Config {
    apalis_amqp::Config::default()
        .queue(topology.queue(event))
        .prefetch_count(prefetch)
        .declare_options(Topology::queue_options())
        .declare_arguments(topology.queue_arguments(event))
}

/// The retry policy of a function: `max_retries` retries after the first attempt, waiting
/// `base`, `2 × base`, `4 × base` … (plus up to 10 % jitter, so a burst of failures does not
/// retry in lockstep). Errors marked permanent (`AbortError`) are not retried. A wait is cut
/// short when `shutdown` is cancelled (see [`InterruptibleRetry`]).
///
/// # Panics
/// Never: the backoff bounds are valid by construction.
pub fn retry_policy(
    max_retries: usize,
    base: Duration,
    shutdown: CancellationToken,
) -> InterruptibleRetry<BackoffRetryPolicy<ExponentialBackoff<HasherRng>>> {
    let base = base.max(Duration::from_millis(1));
    let exponent = u32::try_from(max_retries).unwrap_or(u32::MAX).min(16);
    let max = base.saturating_mul(2u32.saturating_pow(exponent));
    let backoff = ExponentialBackoffMaker::new(base, max, 0.1, HasherRng::default())
        .expect("min <= max, max > 0, jitter in range")
        .make_backoff();
    InterruptibleRetry { inner: RetryPolicy::retries(max_retries).with_backoff(backoff), shutdown }
}

/// A retry policy whose backoff waits end when `shutdown` is cancelled.
///
/// apalis' `BackoffRetryPolicy` only declines to retry when the worker is already shutting
/// down as the attempt fails; a job that is sleeping in its backoff when shutdown starts
/// sleeps on (up to `base × 2^retries`), and the process waits for it until
/// `SHUTDOWN_TIMEOUT_SECS` runs out. Cut short, the retry reaches [`super::ShutdownGuardLayer`],
/// which fails it with [`crate::shutdown::ShutdownInterrupted`] so that the message is requeued.
#[derive(Debug, Clone)]
pub struct InterruptibleRetry<P> {
    inner: P,
    shutdown: CancellationToken,
}

impl<P, T, Res, Err> Policy<Task<T>, Res, Err> for InterruptibleRetry<P>
where
    P: Policy<Task<T>, Res, Err>,
    P::Future: Send + 'static,
{
    type Future = BoxFuture<'static, ()>;

    fn retry(&mut self, task: &mut Task<T>, result: &mut Result<Res, Err>) -> Option<Self::Future> {
        // No new waits once shutdown has begun: the attempt a cut-short wait lets through fails
        // with `ShutdownInterrupted` before it counts as an attempt, so retrying it again would
        // spin until the worker noticed the shutdown.
        if self.shutdown.is_cancelled() {
            return None;
        }
        let wait = self.inner.retry(task, result)?;
        let shutdown = self.shutdown.clone();
        Some(
            async move {
                tokio::select! {
                    () = wait => {}
                    () = shutdown.cancelled() => {}
                }
            }
            .boxed(),
        )
    }

    fn clone_request(&mut self, task: &Task<T>) -> Option<Task<T>> {
        self.inner.clone_request(task)
    }
}

/// How long a supervisor waits before restarting a worker that ended with an error (broker
/// gone, consumer cancelled): capped exponential backoff with jitter, reset once a run has
/// lasted a minute, so an outage never turns into a hot reconnect loop.
#[derive(Debug, Clone, Default)]
pub struct RestartBackoff(Arc<Mutex<RestartState>>);

#[derive(Debug, Default)]
struct RestartState {
    delays: Option<backon::ExponentialBackoff>,
    last_start: Option<Instant>,
}

impl RestartBackoff {
    /// A run that lasted this long counts as healthy: the next failure starts the backoff over.
    const HEALTHY_RUN: Duration = Duration::from_secs(60);

    /// The delay before start number `restarts` (0 for the first start).
    pub fn delay(&self, restarts: usize) -> Duration {
        let mut state = self.0.lock().expect("restart backoff lock poisoned");
        let healthy = state.last_start.is_some_and(|at| at.elapsed() >= Self::HEALTHY_RUN);
        if restarts == 0 || healthy {
            state.delays = None;
        }
        let delay = if restarts == 0 {
            Duration::ZERO
        } else {
            let delays = state.delays.get_or_insert_with(|| {
                backon::ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(15))
                    .with_jitter()
                    .without_max_times()
                    .build()
            });
            delays.next().unwrap_or(Duration::from_secs(15))
        };
        state.last_start = Some(Instant::now() + delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueType;

    #[test]
    fn the_worker_declares_its_queue_exactly_as_the_topology_does() {
        let topology = Topology::new("p-", QueueType::Quorum);
        let config = amqp_config(&topology, EventType::OrderExpired, 50);
        assert_eq!(config.queue.to_string(), "p-order-expired-event");
        assert_eq!(config.declare_arguments, topology.queue_arguments(EventType::OrderExpired));
        assert_eq!(config.declare_options, Topology::queue_options());
        assert_eq!(config.prefetch_count, 50);
    }

    #[test]
    fn restarts_back_off_and_the_first_start_does_not_wait() {
        let backoff = RestartBackoff::default();
        assert_eq!(backoff.delay(0), Duration::ZERO);
        let delays: Vec<_> = (1..=12).map(|n| backoff.delay(n)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(30)), "{delays:?}");
        assert!(delays[11] >= Duration::from_secs(15), "{delays:?}");
        assert!(delays[0] < Duration::from_secs(1), "{delays:?}");
    }
}
