//! `JournalLayer`: a tower layer on every worker that journals each attempt and counts it in
//! the metrics. Placed after `.retry(..)`, it sees every attempt, and decides what the board
//! calls the job afterwards: `Done`, `Failed` (a retry follows), or `Killed` (dead-lettered).

use std::{
    fmt::Display,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use apalis_core::{
    error::BoxDynError,
    task::{Task, status::Status},
    worker::context::WorkerContext,
};
use chrono::{DateTime, Utc};
use futures::{FutureExt, future::BoxFuture};
use tower::{Layer, Service};
use tracing::Instrument;

use super::{JobStatus, Journal, JournalEntry};
use crate::{
    events::{Event, OrderCompleted, OrderCreated, OrderExpired},
    metrics::{FunctionLabels, Metrics},
    shutdown::ShutdownInterrupted,
};

/// What the journal records about a job's arguments.
pub trait JournalArgs {
    /// The arguments as JSON text.
    fn journal_args(&self) -> String;
    /// The order the job concerns, if any.
    fn order_id(&self) -> Option<i64>;
}

fn event_args<E: Event>(event: &E) -> String {
    serde_json::to_string(event).unwrap_or_else(|_| "{}".into())
}

impl JournalArgs for OrderCreated {
    fn journal_args(&self) -> String {
        event_args(self)
    }

    fn order_id(&self) -> Option<i64> {
        Some(Event::order_id(self))
    }
}

impl JournalArgs for OrderCompleted {
    fn journal_args(&self) -> String {
        event_args(self)
    }

    fn order_id(&self) -> Option<i64> {
        Some(Event::order_id(self))
    }
}

impl JournalArgs for OrderExpired {
    fn journal_args(&self) -> String {
        event_args(self)
    }

    fn order_id(&self) -> Option<i64> {
        Some(Event::order_id(self))
    }
}

impl JournalArgs for apalis_cron::Tick {
    fn journal_args(&self) -> String {
        let scheduled_at = i64::try_from(self.get_timestamp())
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .map(|t| t.to_rfc3339());
        serde_json::json!({ "scheduledAt": scheduled_at }).to_string()
    }

    fn order_id(&self) -> Option<i64> {
        None
    }
}

/// Journals every attempt of one function's jobs.
#[derive(Debug, Clone)]
pub struct JournalLayer {
    inner: Arc<Settings>,
}

#[derive(Debug)]
struct Settings {
    journal: Journal,
    metrics: Arc<Metrics>,
    labels: FunctionLabels,
    function: String,
    queue: String,
    max_retries: usize,
}

impl JournalLayer {
    /// A layer for `function` consuming `queue`, which retries `max_retries` times.
    pub fn new(
        journal: Journal,
        metrics: Arc<Metrics>,
        function: impl Into<String>,
        queue: impl Into<String>,
        max_retries: usize,
    ) -> Self {
        let function = function.into();
        JournalLayer {
            inner: Arc::new(Settings {
                journal,
                metrics,
                labels: FunctionLabels::of(&function),
                function,
                queue: queue.into(),
                max_retries,
            }),
        }
    }
}

impl<S> Layer<S> for JournalLayer {
    type Service = JournalService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JournalService { inner, settings: self.inner.clone() }
    }
}

/// The service of [`JournalLayer`].
#[derive(Debug, Clone)]
pub struct JournalService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S, Args> Service<Task<Args>> for JournalService<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError> + 'static,
    S::Future: Send + 'static,
    S::Response: Display,
    Args: JournalArgs,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let settings = self.settings.clone();
        let metadata = task.metadata();
        // EventBackend makes the message_id the task id; the cron's ids are unique per run.
        let message_id = task.task_id().map_or_else(|| uuid::Uuid::now_v7().to_string(), ToString::to_string);
        let attempt = task.attempt() + 1;
        let worker = task.data().get::<WorkerContext>().cloned();
        let enqueued_at = metadata
            .get("timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .unwrap_or_else(Utc::now);
        let span = job_span(&settings, &message_id, attempt, metadata.get("message_id").is_some());
        // A message continues the trace its `traceparent` names (a cron run has none and starts
        // its own); one that does not parse starts a new trace.
        crate::telemetry::continue_trace(&span, |name| metadata.get(name));
        settings.journal.record(JournalEntry::Started {
            message_id: message_id.clone(),
            queue: settings.queue.clone(),
            function: settings.function.clone(),
            args: task.args.journal_args(),
            order_id: task.args.order_id(),
            correlation_id: metadata.get("correlation_id").map(str::to_owned),
            trace_id: crate::telemetry::trace_id(&span),
            worker: worker.as_ref().map_or_else(|| "unknown".to_owned(), |w| w.name().to_owned()),
            max_attempts: i32::try_from(settings.max_retries + 1).unwrap_or(i32::MAX),
            enqueued_at,
            at: Utc::now(),
        });
        let status = task.raw_status().clone();
        let started = Instant::now();
        let future = span.in_scope(|| self.inner.call(task));
        async move {
            let result = future.await.map_err(Into::into);
            let metrics = &settings.metrics;
            metrics.job_duration.get_or_create(&settings.labels).observe(started.elapsed().as_secs_f64());
            let (job_status, error, outcome) = match &result {
                Ok(response) => {
                    metrics.jobs_succeeded.get_or_create(&settings.labels).inc();
                    (JobStatus::Done, None, Some(response.to_string()))
                }
                Err(error) => {
                    metrics.jobs_failed.get_or_create(&settings.labels).inc();
                    let shutting_down = error.downcast_ref::<ShutdownInterrupted>().is_some()
                        || worker.as_ref().is_some_and(WorkerContext::is_shutting_down);
                    // The same decision the retry policy takes: a permanent error (Killed) or
                    // the last attempt is dead-lettered; a failure during shutdown is requeued.
                    let status = if status.load() == Status::Killed || attempt > settings.max_retries {
                        metrics.jobs_dead_lettered.get_or_create(&settings.labels).inc();
                        JobStatus::Killed
                    } else if shutting_down {
                        JobStatus::Pending
                    } else {
                        metrics.jobs_retried.get_or_create(&settings.labels).inc();
                        JobStatus::Failed
                    };
                    (status, Some(describe(error.as_ref())), None)
                }
            };
            settings.journal.record(JournalEntry::Finished {
                message_id,
                status: job_status,
                error,
                result: outcome,
                at: Utc::now(),
            });
            if result.is_err() && crate::telemetry::exporting() {
                tracing::Span::current().record("otel.status_code", "error");
            }
            result
        }
        .instrument(span)
        .boxed()
    }
}

/// The span of one attempt: the function, the message (or the cron run) and the attempt, which
/// every log line of the job shows. A span that is exported is also named and described by
/// OpenTelemetry's messaging conventions (`process <queue>`, a consumer span) for a message, or
/// after the function for a cron run; a process that exports nothing does not hold those for
/// each of its jobs ([`crate::telemetry::exporting`]).
fn job_span(settings: &Settings, message_id: &str, attempt: usize, is_message: bool) -> tracing::Span {
    use tracing::field::Empty;
    // Four spans rather than fields recorded afterwards: OpenTelemetry's layer reserves room for
    // every declared field, `Empty` ones too, for as long as the job runs.
    match (is_message, crate::telemetry::exporting()) {
        (true, true) => tracing::info_span!(
            "job",
            otel.name = %format_args!("process {}", settings.queue),
            otel.kind = "consumer",
            otel.status_code = Empty,
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %settings.queue,
            messaging.message.id = %message_id,
            job.function = %settings.function,
            job.attempt = attempt,
        ),
        (true, false) => tracing::info_span!(
            "job",
            messaging.message.id = %message_id,
            job.function = %settings.function,
            job.attempt = attempt,
        ),
        (false, true) => tracing::info_span!(
            "job",
            otel.name = %settings.function,
            otel.kind = "internal",
            otel.status_code = Empty,
            job.function = %settings.function,
            job.id = %message_id,
            job.attempt = attempt,
        ),
        (false, false) => tracing::info_span!(
            "job",
            job.function = %settings.function,
            job.id = %message_id,
            job.attempt = attempt,
        ),
    }
}

/// An error and its causes, `outer: inner: innermost`.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
