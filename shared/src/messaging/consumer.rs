//! `EventBackend<T>`: the apalis backend our queue functions consume from. It wraps
//! apalis-amqp's `AmqpBackend<T>` and works around its pitfalls (DESIGN.md section 9), each
//! named where it is handled:
//!
//! 1. *Never-pushed panic.* `AmqpBackend::poll_ready` reports ready once the queue is declared,
//!    before the consumer exists, and `poll_next` then unwraps the missing consumer. We open the
//!    channel through the sink first and poll until the consumer exists before any `poll_next`.
//! 2. *Acks on a channel-less copy.* `AmqpBackend`'s `BackendConfig::middleware` hands the ack
//!    layer a clone taken before the channel exists, so every ack fails `NotConnected`. Our ack
//!    layer ([`LazyAck`]) uses a clone taken after the channel opened.
//! 3. *Undecodable bodies end the worker.* apalis decodes `Durable` backends' payloads in
//!    `DurableBackend::poll_next` and ends the worker on a codec error, leaving the message
//!    unacked at the head of the queue. We declare the backend `Ephemeral` (no apalis decoding),
//!    decode here, and reject what does not decode (`requeue = false`: it dead-letters to
//!    `<queue>_error`).
//! 4. *Delivery tags as task ids.* apalis-amqp numbers tasks by delivery tag (1, 2, 3 … per
//!    channel). We use the AMQP `message_id` instead.
//! 5. *Consumer cancelled by the broker* (queue deleted, node restart): the upstream stream
//!    ends and the worker waits forever for a shutdown nobody asked for. We turn it into an
//!    error, so the worker ends and its supervisor restarts it.
//! 6. *Failures during shutdown are dead-lettered.* apalis's retry policy stops retrying once
//!    shutdown starts and upstream nacks without requeue, so a job interrupted by shutdown would
//!    land in `<queue>_error`. [`LazyAck`] requeues such failures instead.
//! 7. *Only `x-apalis-` headers reach a task.* apalis-amqp drops every other AMQP header, the W3C
//!    `traceparent`/`tracestate` a foreign producer sets included, so the job span
//!    (`crate::journal::JournalLayer`) can continue only `x-apalis-traceparent`. Our publisher
//!    writes both names (`super::publisher`); the report to file upstream is
//!    `docs/upstream/apalis-amqp-trace-headers.md`.
//! 8. *`WorkerBuilder::data` copies each task's context* behind the ack layer, which keeps a
//!    share of it. The deps go into each job here instead ([`EventBackend::carrying`]).
//!
//! Two rules of ours are kept here too, before a delivery becomes a job: its schema version
//! must not be newer than this build's (otherwise it is dead-lettered with that reason, like an
//! undecodable one), and it must hold a permit of the process's [`JobBudget`]. A decoded
//! delivery waits for its permit in the backend (one per queue at most; the queue takes no
//! other delivery meanwhile); if the worker closes first, it is nacked back to the queue.

use std::{
    marker::PhantomData,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use apalis_amqp::{AmqpBackend, Config, Error as AmqpError};
use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral},
    error::BoxDynError,
    task::{ExecutionContext, Task, metadata::MetadataStore, status::Status, task_id::TaskId},
    timer::Delay,
    worker::{
        context::WorkerContext,
        ext::ack::{Acknowledge, AcknowledgeLayer},
    },
};
use futures::{FutureExt, Sink, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use serde::de::DeserializeOwned;
use tokio_util::sync::PollSemaphore;

use super::budget::{JobBudget, JobPermit};
use crate::{
    events::{SCHEMA_VERSION_METADATA, check_schema_version},
    journal::{JobStatus, Journal, JournalEntry},
    metrics::{FunctionLabels, Metrics},
    shutdown::ShutdownInterrupted,
};

/// Where an [`EventBackend`] reports the messages it dead-letters itself (undecodable ones,
/// which never reach a function or its middleware).
#[derive(Debug, Clone)]
pub struct DeadLetterReports {
    /// The job journal.
    pub journal: Journal,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The function consuming the queue.
    pub function: String,
}

/// Why an [`EventBackend`] stopped consuming; the worker ends and is restarted.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The broker connection or channel failed.
    #[error("AMQP consumer failed: {0}")]
    Amqp(#[from] AmqpError),
    /// The broker cancelled the consumer (e.g. the queue was deleted).
    #[error("the broker cancelled the AMQP consumer")]
    Cancelled,
    /// Connecting and subscribing took longer than [`CONNECT_TIMEOUT`].
    #[error("connecting the AMQP consumer took longer than {0:?}")]
    ConnectTimeout(Duration),
}

/// The longest a consumer may take from its first connection attempt to consuming. A connect
/// that hangs (seen once in the fault suite, during a broker restart: the worker of one queue
/// never reported an error nor consumed again) then ends the worker, and the supervisor
/// starts a fresh one after its backoff.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type Rejection = BoxFuture<'static, Result<(), AmqpError>>;

/// Puts data into a job ([`EventBackend::carrying`]).
type Carry<T> = Arc<dyn Fn(&mut Task<T>) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the restart delay, then opening the channel.
    Connecting,
    /// Channel open; the consumer is being created.
    Subscribing,
    /// Consuming.
    Consuming,
}

/// A queue of JSON events of type `T`, consumed through apalis-amqp (see the module docs).
pub struct EventBackend<T> {
    inner: AmqpBackend<T>,
    phase: Phase,
    start_delay: Option<Delay>,
    // Runs from the first connection attempt until consuming (CONNECT_TIMEOUT).
    connect_deadline: Option<Delay>,
    // Rejections of undecodable deliveries, driven to completion by the worker's polls.
    rejections: FuturesUnordered<Rejection>,
    // Filled with a clone of `inner` once its channel exists; read by the ack layer.
    ack_backend: Arc<Mutex<Option<AmqpBackend<T>>>>,
    consuming: Arc<AtomicBool>,
    reports: Option<DeadLetterReports>,
    // The process's budget, and the decoded delivery waiting for a permit of it.
    budget: Option<PollSemaphore>,
    waiting: Option<Task<T>>,
    // Puts what every job of this queue carries into its data (`carrying`).
    carry: Option<Carry<T>>,
    _event: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for EventBackend<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBackend").field("queue", &self.inner.config().queue).field("phase", &self.phase).finish()
    }
}

impl<T: Send + 'static> EventBackend<T> {
    /// A backend for the queue in `config`, connecting to `url` on first poll (after
    /// `start_delay`, the supervisor's restart backoff). `consuming` is set while the consumer
    /// is up, for readiness.
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn new(
        url: &str,
        config: Config,
        start_delay: Duration,
        consuming: Arc<AtomicBool>,
    ) -> Result<Self, AmqpError> {
        let inner = AmqpBackend::<T>::new_from_addr(super::connection_url(url))?.with_config(config);
        Ok(EventBackend {
            inner,
            phase: Phase::Connecting,
            start_delay: (!start_delay.is_zero()).then(|| Delay::new(start_delay)),
            connect_deadline: None,
            rejections: FuturesUnordered::new(),
            ack_backend: Arc::new(Mutex::new(None)),
            consuming,
            reports: None,
            budget: None,
            waiting: None,
            carry: None,
            _event: PhantomData,
        })
    }

    /// Makes every delivery take a permit of `budget` before it becomes a job (see the module
    /// docs); without a budget, only the queue's prefetch bounds the jobs in flight.
    #[must_use]
    pub fn within(mut self, budget: &JobBudget) -> Self {
        self.budget = Some(budget.poller());
        self
    }

    /// Gives every job `data` (as apalis's `WorkerBuilder::data` does), put into the job as it
    /// leaves this backend. A backend carries one value: a second call replaces the first.
    ///
    /// apalis's `Data` layer runs after the acknowledgement layer has kept a copy of the task's
    /// context (an `Arc`) for the ack, so its insert (`Arc::make_mut`) copies the whole context:
    /// every job would hold two copies of its metadata and data (issue 15, "Memory of parked
    /// jobs"). Here the job's context is not shared yet, so nothing is copied. The report to file
    /// upstream is `docs/upstream/apalis-core-data-layer-copies-the-task-context.md`.
    #[must_use]
    pub fn carrying<D: Clone + Send + Sync + 'static>(mut self, data: D) -> Self {
        self.carry = Some(Arc::new(move |task: &mut Task<T>| {
            task.inject_data(data.clone());
        }));
        self
    }

    /// Journals and counts the messages this backend dead-letters itself.
    #[must_use]
    pub fn reporting_to(mut self, reports: DeadLetterReports) -> Self {
        self.reports = Some(reports);
        self
    }

    fn report_dead_lettered(&self, message_id: Option<&str>, body: &[u8], reason: &str) {
        let Some(reports) = &self.reports else { return };
        reports.metrics.jobs_dead_lettered.get_or_create(&FunctionLabels::of(&reports.function)).inc();
        let message_id = message_id.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let now = chrono::Utc::now();
        let raw = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
        reports.journal.record(JournalEntry::Started {
            message_id: message_id.clone(),
            queue: self.inner.config().queue.to_string(),
            function: reports.function.clone(),
            args: serde_json::json!({ "undecodable": raw }).to_string(),
            order_id: None,
            correlation_id: None,
            trace_id: None,
            worker: "decoder".into(),
            max_attempts: 1,
            enqueued_at: now,
            at: now,
        });
        reports.journal.record(JournalEntry::Finished {
            message_id,
            status: JobStatus::Killed,
            error: Some(reason.to_owned()),
            result: None,
            at: now,
        });
    }

    fn drive_rejections(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(result)) = self.rejections.poll_next_unpin(cx) {
            if let Err(e) = result {
                tracing::error!(error = %e, "could not dead-letter an undecodable message; it will be redelivered");
            }
        }
    }

    /// Lets `task` become a job once it holds a permit of the budget; until then it waits here
    /// and this queue takes no other delivery.
    fn admit(&mut self, mut task: Task<T>, cx: &mut Context<'_>) -> Poll<Option<Result<Task<T>, ConsumerError>>> {
        if let Some(budget) = self.budget.as_mut() {
            match budget.poll_acquire(cx) {
                Poll::Ready(Some(permit)) => {
                    task.inject_data(JobPermit::new(permit));
                }
                // The semaphore is never closed; were it, the job would run outside the budget.
                Poll::Ready(None) => {}
                Poll::Pending => {
                    self.waiting = Some(task);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Some(Ok(task)))
    }

    fn failed<E: Into<ConsumerError>>(&self, error: E) -> ConsumerError {
        self.consuming.store(false, Ordering::Relaxed);
        error.into()
    }
}

impl<T> Backend for EventBackend<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Task = Task<T>;
    type Error = ConsumerError;

    fn poll_ready(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), ConsumerError>> {
        self.drive_rejections(cx);
        if let Some(delay) = self.start_delay.as_mut() {
            ready!(Pin::new(delay).poll(cx));
            self.start_delay = None;
        }
        if self.phase != Phase::Consuming {
            let deadline = self.connect_deadline.get_or_insert_with(|| Delay::new(CONNECT_TIMEOUT));
            if Pin::new(deadline).poll(cx).is_ready() {
                return Poll::Ready(Err(self.failed(ConsumerError::ConnectTimeout(CONNECT_TIMEOUT))));
            }
        }
        if self.phase == Phase::Connecting {
            // Pitfall 1: the sink's poll_ready connects, opens the channel and declares the queue.
            if let Err(e) = ready!(Sink::<Task<Vec<u8>>>::poll_ready(Pin::new(&mut self.inner), cx)) {
                return Poll::Ready(Err(self.failed(e)));
            }
            // Pitfall 2: this clone shares the open channel, so acks through it work.
            *self.ack_backend.lock().expect("ack backend lock poisoned") = Some(self.inner.clone());
            self.phase = Phase::Subscribing;
        }
        if self.phase == Phase::Subscribing {
            // With a channel present, the backend's poll_ready creates the consumer.
            if let Err(e) = ready!(self.inner.poll_ready(cx, worker)) {
                return Poll::Ready(Err(self.failed(e)));
            }
            self.phase = Phase::Consuming;
            self.connect_deadline = None;
            self.consuming.store(true, Ordering::Relaxed);
            tracing::info!(queue = %self.inner.config().queue, worker = worker.name(), "consuming");
        }
        match ready!(self.inner.poll_ready(cx, worker)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(self.failed(e))),
        }
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<T>, ConsumerError>>> {
        if self.phase != Phase::Consuming {
            // Pitfall 1 again: never let apalis-amqp poll a consumer that does not exist.
            if let Err(e) = ready!(self.poll_ready(cx, worker)) {
                return Poll::Ready(Some(Err(e)));
            }
        }
        loop {
            self.drive_rejections(cx);
            if let Some(task) = self.waiting.take() {
                return self.admit(task, cx);
            }
            let task = match ready!(self.inner.poll_next(cx, worker)) {
                Some(Ok(task)) => task,
                Some(Err(e)) => return Poll::Ready(Some(Err(self.failed(e)))),
                None if worker.is_shutting_down() => return Poll::Ready(None),
                // Pitfall 5.
                None => return Poll::Ready(Some(Err(self.failed(ConsumerError::Cancelled)))),
            };
            let decoded = check_schema_version(task.metadata().get(SCHEMA_VERSION_METADATA))
                .map_err(|e| (e.to_string(), BoxDynError::from(e)))
                .and_then(|()| {
                    serde_json::from_slice::<T>(&task.args)
                        .map_err(|e| (format!("undecodable message: {e}"), BoxDynError::from(e)))
                });
            match decoded {
                Ok(event) => {
                    let metadata = job_metadata(task.metadata());
                    let message_id = metadata.get("message_id").map(str::to_owned);
                    let builder = task.map_args(|_| event).into_builder().with_metadata(metadata);
                    // Pitfall 4: the message_id, not the delivery tag, identifies the task.
                    let mut task = match message_id {
                        Some(message_id) => builder.task_id(TaskId::String(message_id)).build(),
                        None => builder.build(),
                    };
                    if let Some(carry) = &self.carry {
                        carry(&mut task);
                    }
                    return self.admit(task, cx);
                }
                Err((reason, error)) => {
                    // Pitfall 3 (and a newer schema version): reject without requeue; the
                    // queue's dead-letter exchange keeps it. It never needed a permit.
                    tracing::error!(
                        queue = %self.inner.config().queue,
                        message.id = task.metadata().get("message_id").unwrap_or("-"),
                        error = %reason,
                        "message dead-lettered to the error queue before it became a job"
                    );
                    self.report_dead_lettered(task.metadata().get("message_id"), &task.args, &reason);
                    task.raw_status().store(Status::Killed);
                    let result: Result<(), BoxDynError> = Err(error);
                    self.rejections.push(Acknowledge::<()>::ack(&mut self.inner, &result, task.ctx()));
                }
            }
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), ConsumerError>> {
        if let Some(task) = self.waiting.take() {
            // It never became a job: back to the queue, for this process later or another one.
            let mut backend = self.inner.clone();
            let mut config = backend.config().clone();
            config.nack_options.requeue = true;
            backend = backend.with_config(config);
            let result: Result<(), BoxDynError> = Err("the worker closed before the job could start".into());
            self.rejections.push(Acknowledge::<()>::ack(&mut backend, &result, task.ctx()));
        }
        self.drive_rejections(cx);
        if !self.rejections.is_empty() {
            return Poll::Pending;
        }
        self.consuming.store(false, Ordering::Relaxed);
        self.inner.poll_close(cx, worker).map_err(Into::into)
    }
}

/// The metadata a job reads: its message and correlation ids, when it was published, and its
/// trace context (`crate::journal::JournalLayer`, [`super::MessageInfo`]).
pub const JOB_METADATA: [&str; 5] = ["message_id", "correlation_id", "timestamp", "traceparent", "tracestate"];

/// Of what apalis-amqp copied from a delivery's properties, what a job reads ([`JOB_METADATA`]).
/// The rest (content type, type, delivery mode, schema version) was read before the delivery
/// became a job, and a job waiting on a 5-second payment would otherwise hold it: about a
/// third of a delivery's metadata, held by each of thousands of parked jobs (issue 15; the report
/// to file upstream is `docs/upstream/apalis-amqp-metadata-per-delivery.md`).
fn job_metadata(delivered: &MetadataStore) -> MetadataStore {
    JOB_METADATA.iter().filter_map(|&key| delivered.get(key).map(|value| (key, value.to_owned()))).collect()
}

impl<T> BackendConfig for EventBackend<T> {
    type Args = T;
    type Id = u64;
    // Pitfall 3: Ephemeral, so apalis does not decode (we do, in poll_next).
    type Kind = Ephemeral;
    type Config = Config;
    type Layer = AcknowledgeLayer<LazyAck<T>>;

    fn config(&self) -> &Config {
        self.inner.config()
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        AcknowledgeLayer::new(LazyAck { backend: self.ack_backend.clone() })
    }
}

/// Acknowledges through `AmqpBackend`'s own logic (Done → ack; Killed → reject without
/// requeue; otherwise nack, which dead-letters), on a backend copy that has a channel
/// (pitfall 2), and requeues a failure caused by shutdown instead of dead-lettering it
/// (pitfall 6).
pub struct LazyAck<T> {
    backend: Arc<Mutex<Option<AmqpBackend<T>>>>,
}

impl<T> Clone for LazyAck<T> {
    fn clone(&self) -> Self {
        LazyAck { backend: self.backend.clone() }
    }
}

impl<T: Send + 'static, Res: Send + Sync + 'static> Acknowledge<Res> for LazyAck<T> {
    type Error = AmqpError;
    type Future = BoxFuture<'static, Result<(), AmqpError>>;

    fn ack(&mut self, result: &Result<Res, BoxDynError>, ctx: &ExecutionContext) -> Self::Future {
        let Some(mut backend) = self.backend.lock().expect("ack backend lock poisoned").clone() else {
            return async { Err(AmqpError::NotConnected) }.boxed();
        };
        let interrupted_by_shutdown = result.as_ref().err().is_some_and(|error| {
            error.downcast_ref::<ShutdownInterrupted>().is_some()
                || (ctx.status() != Status::Killed
                    && ctx.data().get::<WorkerContext>().is_some_and(WorkerContext::is_shutting_down))
        });
        if interrupted_by_shutdown {
            let mut config = backend.config().clone();
            config.nack_options.requeue = true;
            backend = backend.with_config(config);
        }
        Acknowledge::<Res>::ack(&mut backend, result, ctx)
    }
}

#[cfg(test)]
mod tests {
    use apalis_core::task::metadata::Metadata;

    use super::*;
    use crate::messaging::MessageInfo;

    #[test]
    fn a_job_keeps_only_the_metadata_it_reads() {
        let delivered: MetadataStore = [
            ("message_id", "m-1"),
            ("correlation_id", "c-1"),
            ("timestamp", "1765000000"),
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("content_type", "application/json"),
            ("kind", "OrderCreated"),
            ("delivery_mode", "2"),
            (SCHEMA_VERSION_METADATA, "1"),
        ]
        .into_iter()
        .collect();

        let kept = job_metadata(&delivered);

        let mut keys: Vec<_> = kept.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["correlation_id", "message_id", "timestamp", "traceparent"]);
        assert_eq!(kept.get("message_id"), Some("m-1"));
        assert_eq!(kept.get("traceparent"), delivered.get("traceparent"));
        assert_eq!(MessageInfo::extract(&kept), MessageInfo::extract(&delivered), "what a function reads is kept");
    }
}
