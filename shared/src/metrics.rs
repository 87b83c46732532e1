//! Prometheus metrics, in one registry per process (no global recorder: several apps in one
//! test process stay apart). `/metrics` renders [`Metrics::render`].

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of one HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HttpLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template (`/api/orders/{id}`), never the raw path.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of one HTTP route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template.
    pub route: String,
}

/// Labels of what the HTTP limits refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `overloaded` (a request past the in-flight cap), `connections` (a connection past the
    /// connection cap) or `request_timeout`.
    pub reason: String,
}

impl RefusalLabels {
    /// Labels for `reason`.
    pub fn of(reason: &str) -> Self {
        RefusalLabels { reason: reason.to_owned() }
    }
}

/// Labels of one function's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FunctionLabels {
    /// The function's name, as the registry in the `orderflow` crate spells it.
    pub function: String,
}

impl FunctionLabels {
    /// Labels for `function`.
    pub fn of(function: &str) -> Self {
        FunctionLabels { function: function.to_owned() }
    }
}

/// Every metric orderflow exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests served, by method, route and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Request durations in seconds, by method and route.
    pub http_request_duration: Family<RouteLabels, Histogram>,
    /// Requests and connections the HTTP limits refused with 503, by reason (they are not in
    /// `http_requests`, which counts what the routes answered).
    pub http_refused: Family<RefusalLabels, Counter>,
    /// Outbox rows published and confirmed.
    pub outbox_published: Counter,
    /// Outbox publish attempts that failed (rows stay unsent and are retried).
    pub outbox_publish_failures: Counter,
    /// Outbox rows not yet published (refreshed on every scrape).
    pub outbox_unsent: Gauge,
    /// Age in seconds of the oldest unsent outbox row, 0 when none (refreshed on every scrape).
    pub outbox_oldest_unsent_age: Gauge<f64, AtomicU64>,
    /// Outbox rows parked after `OUTBOX_MAX_ATTEMPTS` refusals (refreshed on every scrape).
    pub outbox_parked: Gauge,
    /// Job attempts that succeeded, by function.
    pub jobs_succeeded: Family<FunctionLabels, Counter>,
    /// Job attempts that failed (retried or not), by function.
    pub jobs_failed: Family<FunctionLabels, Counter>,
    /// Failed attempts that will be retried, by function.
    pub jobs_retried: Family<FunctionLabels, Counter>,
    /// Messages dead-lettered to `<queue>_error` (retries exhausted, permanent failure or
    /// undecodable), by function.
    pub jobs_dead_lettered: Family<FunctionLabels, Counter>,
    /// Duration of job attempts in seconds, by function.
    pub job_duration: Family<FunctionLabels, Histogram>,
    /// Journal entries dropped because the journal writer fell too far behind.
    pub journal_dropped: Counter,
}

fn latency_buckets() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("orderflow");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", http_requests.clone());
        let http_request_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "HTTP request duration", http_request_duration.clone());
        let http_refused = Family::<RefusalLabels, Counter>::default();
        registry.register("http_refused", "HTTP requests and connections refused by the limits", http_refused.clone());
        let outbox_published = Counter::default();
        registry.register("outbox_published", "Outbox rows published with a confirm", outbox_published.clone());
        let outbox_publish_failures = Counter::default();
        registry.register(
            "outbox_publish_failures",
            "Outbox rows whose publish failed",
            outbox_publish_failures.clone(),
        );
        let outbox_unsent = Gauge::default();
        registry.register("outbox_unsent", "Outbox rows not yet published", outbox_unsent.clone());
        let outbox_oldest_unsent_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "outbox_oldest_unsent_age_seconds",
            "Age of the oldest unpublished outbox row",
            outbox_oldest_unsent_age.clone(),
        );
        let outbox_parked = Gauge::default();
        registry.register(
            "outbox_parked",
            "Outbox rows parked after repeated refusals, waiting for a replay",
            outbox_parked.clone(),
        );
        let jobs_succeeded = Family::<FunctionLabels, Counter>::default();
        registry.register("jobs_succeeded", "Job attempts that succeeded", jobs_succeeded.clone());
        let jobs_failed = Family::<FunctionLabels, Counter>::default();
        registry.register("jobs_failed", "Job attempts that failed", jobs_failed.clone());
        let jobs_retried = Family::<FunctionLabels, Counter>::default();
        registry.register("jobs_retried", "Failed job attempts that will be retried", jobs_retried.clone());
        let jobs_dead_lettered = Family::<FunctionLabels, Counter>::default();
        registry.register(
            "jobs_dead_lettered",
            "Messages dead-lettered to the error queue",
            jobs_dead_lettered.clone(),
        );
        let job_duration =
            Family::<FunctionLabels, Histogram>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register("job_duration_seconds", "Duration of job attempts", job_duration.clone());
        let journal_dropped = Counter::default();
        registry.register("journal_dropped", "Journal entries dropped under backpressure", journal_dropped.clone());
        Metrics {
            registry,
            jobs_succeeded,
            jobs_failed,
            jobs_retried,
            jobs_dead_lettered,
            job_duration,
            journal_dropped,
            http_requests,
            http_request_duration,
            http_refused,
            outbox_published,
            outbox_publish_failures,
            outbox_unsent,
            outbox_oldest_unsent_age,
            outbox_parked,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
