//! `JournalLayer`: a tower layer on every worker that journals each attempt and counts it in
//! the metrics. Placed after `.retry(..)`, it sees every attempt, and decides what the board
//! calls the job afterwards: `Done`, `Failed` (a retry follows), or `Killed` (dead-lettered).
//!
//! An attempt is reported started when apalis starts it, or, for a function whose jobs first
//! wait for their turn at the database ([`JournalLayer::reporting_start_on_admission`]), when
//! it gets that turn ([`admitted`]). In a burst, thousands of jobs wait there for seconds; a
//! job reported as it started was then held past the writer's hold and written twice, Running
//! and then finished, where one that is reported once at work usually finishes within the hold
//! and is written once (issue 15). Until then the board shows the job as it was before the
//! attempt: Pending (published, not started) or its last attempt's state.

use std::{
    cell::RefCell,
    fmt::Display,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use apalis_core::{
    error::BoxDynError,
    task::{
        Task,
        status::{AtomicStatus, Status},
    },
    worker::context::WorkerContext,
};
use chrono::{DateTime, Utc};
use futures::{
    FutureExt,
    future::{BoxFuture, Either},
};
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

tokio::task_local! {
    /// The start of the attempt this task runs, not reported yet: it is, once the attempt is
    /// [`admitted`] to its work, or when it ends.
    static UNREPORTED_START: RefCell<Option<Box<UnreportedStart>>>;
}

/// A Started entry and where it goes.
struct UnreportedStart {
    journal: Journal,
    entry: JournalEntry,
}

/// Tells the journal that the current job's attempt is now at work (it got its turn at the
/// database, say). The first call in an attempt of a function that reports its start on
/// admission reports it, started now; any other call does nothing.
///
/// It must run in the job's own task (not in a task the job spawns), where the journal layer
/// keeps the report.
pub fn admitted() {
    // Outside a job (or in one whose start was reported already) there is nothing to report.
    let _ = UNREPORTED_START.try_with(|start| {
        if let Some(mut start) = start.borrow_mut().take() {
            if let JournalEntry::Started { at, .. } = &mut start.entry {
                *at = Utc::now();
            }
            start.journal.record(start.entry);
        }
    });
}

/// Journals every attempt of one function's jobs.
#[derive(Debug, Clone)]
pub struct JournalLayer {
    inner: Arc<Settings>,
    start_on_admission: bool,
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
            start_on_admission: false,
        }
    }

    /// Reports each attempt's start when the function calls [`admitted`] (or, if it never
    /// does, when the attempt ends) rather than when apalis starts it: for a function whose
    /// jobs wait for their turn before they do anything.
    #[must_use]
    pub fn reporting_start_on_admission(self) -> Self {
        JournalLayer { start_on_admission: true, ..self }
    }
}

impl<S> Layer<S> for JournalLayer {
    type Service = JournalService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JournalService { inner, settings: self.inner.clone(), start_on_admission: self.start_on_admission }
    }
}

/// The service of [`JournalLayer`].
#[derive(Debug, Clone)]
pub struct JournalService<S> {
    inner: S,
    settings: Arc<Settings>,
    start_on_admission: bool,
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
        let start = JournalEntry::Started {
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
        };
        let unreported = if self.start_on_admission {
            Some(Box::new(UnreportedStart { journal: settings.journal.clone(), entry: start }))
        } else {
            settings.journal.record(start);
            None
        };
        let end = AttemptEnd {
            settings,
            message_id,
            attempt,
            worker,
            status: task.raw_status().clone(),
            started: Instant::now(),
        };
        let future = span.in_scope(|| self.inner.call(task));
        // Combinators, not an `async` block: a future that an `async` block captures and then
        // awaits is held twice in it (as the capture and as the awaited value), and every
        // parked job holds this one (issue 15, "Memory of parked jobs").
        let future = match unreported {
            // An attempt that ends before it was admitted is reported started as it ends.
            Some(start) => {
                Either::Left(UNREPORTED_START.scope(RefCell::new(Some(start)), future.inspect(|_| admitted())))
            }
            None => Either::Right(future),
        };
        future.map(move |result| end.report(result.map_err(Into::into))).instrument(span).boxed()
    }
}

/// What an attempt's end is reported with.
struct AttemptEnd {
    settings: Arc<Settings>,
    message_id: String,
    attempt: usize,
    worker: Option<WorkerContext>,
    status: AtomicStatus,
    started: Instant,
}

impl AttemptEnd {
    /// Journals the attempt's end and counts it, deciding what the board calls the job now.
    /// It must run in the attempt's span, whose error status it sets.
    fn report<R: Display>(self, result: Result<R, BoxDynError>) -> Result<R, BoxDynError> {
        let AttemptEnd { settings, message_id, attempt, worker, status, started } = self;
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
                // The same decision the retry policy takes: a permanent error (Killed) or the
                // last attempt is dead-lettered; a failure during shutdown is requeued.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rust_decimal::Decimal;
    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::domain::Money;

    fn job() -> Task<OrderCreated> {
        let total = Money::new(Decimal::new(1250, 2)).unwrap();
        Task::new(OrderCreated { order_id: 7, user_id: 1, product_id: 2, total })
    }

    /// A service whose one job is admitted (twice over) when `admit` fires and ends when `end`
    /// fires.
    fn admitted_when(
        admit: oneshot::Receiver<()>,
        end: oneshot::Receiver<()>,
    ) -> impl Service<Task<OrderCreated>, Response = &'static str, Error = BoxDynError, Future: Send + 'static> {
        let mut gates = Some((admit, end));
        tower::service_fn(move |_: Task<OrderCreated>| {
            let (admit, end) = gates.take().expect("one job");
            async move {
                if admit.await.is_ok() {
                    admitted();
                    admitted();
                }
                let _ = end.await;
                Ok::<_, BoxDynError>("done")
            }
        })
    }

    /// What the journal got next.
    fn next(entries: &mut mpsc::Receiver<JournalEntry>) -> &'static str {
        match entries.try_recv() {
            Ok(JournalEntry::Started { .. }) => "started",
            Ok(JournalEntry::Finished { .. }) => "finished",
            Err(_) => "nothing",
        }
    }

    /// Lets the spawned job run as far as it can.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn a_job_that_waits_for_its_turn_is_reported_started_once_when_it_gets_it() {
        let (journal, mut entries) = Journal::for_tests();
        let layer = JournalLayer::new(journal, Arc::default(), "f", "q", 0).reporting_start_on_admission();
        let ((admit, admission), (end, ending)) = (oneshot::channel(), oneshot::channel());
        let job = tokio::spawn(layer.layer(admitted_when(admission, ending)).call(job()));

        settle().await;
        assert_eq!(next(&mut entries), "nothing", "not reported while it waits");
        let admission_sent = Utc::now();
        admit.send(()).unwrap();
        settle().await;
        match entries.try_recv() {
            Ok(JournalEntry::Started { at, .. }) => assert!(at >= admission_sent, "started at its admission"),
            other => panic!("expected its start, got {other:?}"),
        }
        assert_eq!(next(&mut entries), "nothing", "reported once");
        end.send(()).unwrap();
        job.await.unwrap().unwrap();
        assert_eq!([next(&mut entries), next(&mut entries)], ["finished", "nothing"]);
    }

    #[tokio::test]
    async fn a_job_that_ends_before_its_turn_is_reported_started_as_it_ends() {
        let (journal, mut entries) = Journal::for_tests();
        let layer = JournalLayer::new(journal, Arc::default(), "f", "q", 0).reporting_start_on_admission();
        let ((admit, admission), (end, ending)) = (oneshot::channel::<()>(), oneshot::channel());
        drop(admit);
        end.send(()).unwrap();
        layer.layer(admitted_when(admission, ending)).call(job()).await.unwrap();
        let reported = [next(&mut entries), next(&mut entries), next(&mut entries)];
        assert_eq!(reported, ["started", "finished", "nothing"]);
    }

    #[tokio::test]
    async fn a_job_of_any_other_function_is_reported_started_as_apalis_starts_it() {
        let (journal, mut entries) = Journal::for_tests();
        let layer = JournalLayer::new(journal, Arc::default(), "f", "q", 0);
        let ((admit, admission), (end, ending)) = (oneshot::channel(), oneshot::channel());
        let job = layer.layer(admitted_when(admission, ending)).call(job());
        assert_eq!(next(&mut entries), "started");
        admit.send(()).unwrap();
        end.send(()).unwrap();
        job.await.unwrap();
        assert_eq!([next(&mut entries), next(&mut entries)], ["finished", "nothing"]);
    }

    /// A service whose job's future holds 4 KiB while it waits.
    fn holding_4_kib()
    -> impl Service<Task<OrderCreated>, Response = &'static str, Error = BoxDynError, Future: Send + 'static> {
        tower::service_fn(|_: Task<OrderCreated>| async {
            let held = [1u8; 4096];
            tokio::task::yield_now().await;
            Ok::<_, BoxDynError>(if held.iter().all(|b| *b == 1) { "done" } else { "changed" })
        })
    }

    #[tokio::test]
    async fn a_job_holds_its_function_future_once() {
        // Every parked job holds the layer's future, so it must hold the function's (here 4 KiB)
        // once, not as a capture and again as the value it awaits.
        for on_admission in [false, true] {
            let (journal, _entries) = Journal::for_tests();
            let layer = JournalLayer::new(journal, Arc::default(), "f", "q", 0);
            let layer = if on_admission { layer.reporting_start_on_admission() } else { layer };
            let inner = holding_4_kib().call(job());
            let inner_size = size_of_val(&inner);
            let job = layer.layer(holding_4_kib()).call(job());
            let size = size_of_val(&*job);
            assert!(inner_size >= 4096, "{inner_size}");
            // Held twice, it would be more than twice the function's; the layer's own state is a
            // few hundred bytes.
            assert!(size < inner_size * 3 / 2, "the layer's future is {size} bytes for a {inner_size}-byte one");
            assert_eq!(job.await.unwrap(), "done");
        }
    }
}
