//! Tracing set-up: pretty lines for people, JSON for machines (`LOG_FORMAT`), filtered by
//! `RUST_LOG`; and one OpenTelemetry trace per order (issue 13).
//!
//! Log fields are dotted (`order.id`, `message.id`); secrets and tokens are never logged.
//!
//! Every tracing span is also an OpenTelemetry span, so every request and job has a trace id
//! and a span id; JSON lines written inside one carry them as `trace_id` and `span_id`. W3C
//! trace context (`traceparent`, `tracestate`) crosses process boundaries through HTTP
//! headers, outbox rows and AMQP headers ([`TraceHeaders`]), always read and written by the
//! OpenTelemetry crates' own `TraceContextPropagator`; context that does not parse starts a
//! new trace. Spans leave the process only when an OTLP endpoint is configured ([`Export`]):
//! over OTLP/HTTP with protobuf, from a bounded batch queue drained by a tokio task, so a
//! collector that is slow or down never holds up a request or a job (spans are dropped, and
//! the log says so at most once a minute).

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use opentelemetry::{
    Context,
    propagation::{Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    runtime,
    trace::{SdkTracerProvider, SpanData, SpanExporter, span_processor_with_async_runtime::BatchSpanProcessor},
};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    filter::{FilterExt, dynamic_filter_fn},
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::{Filter, SubscriberExt},
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::config::LogFormat;

/// A boxed layer over the plain registry, e.g. the board's live log stream.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

/// A per-layer filter from env-filter directives.
///
/// Works around tokio-rs/tracing#2519: with several per-layer filters, a `log` record checked
/// through tracing-log (sqlx does so after every query) leaves stale per-layer state, and the
/// next event is silently dropped from every layer. And-ing a filter that is always enabled but
/// "dynamic" makes tracing re-evaluate each event, which keeps the state fresh.
///
/// # Errors
/// The directives do not parse.
pub fn layer_filter(directives: &str) -> anyhow::Result<impl Filter<Registry> + Send + Sync + 'static> {
    let filter = EnvFilter::try_new(directives).with_context(|| format!("Invalid log filter `{directives}`"))?;
    Ok(filter.and(dynamic_filter_fn(|_, _| true)))
}

/// Where spans are exported to, from the standard `OTEL_*` settings.
#[derive(Debug, Clone, Copy)]
pub struct Export<'a> {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (`/v1/traces` is appended);
    /// `None` exports nothing.
    pub endpoint: Option<&'a str>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: &'a str,
    /// `OTEL_SDK_DISABLED`: no OpenTelemetry layer at all, so no spans and no trace ids.
    pub sdk_disabled: bool,
}

impl Export<'_> {
    /// No exporter: spans and their ids exist in the process (logs, journal) and go nowhere.
    pub const NONE: Export<'static> = Export { endpoint: None, service_name: "orderflow", sdk_disabled: false };
}

/// Whether this process exports its spans (set once, by [`init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process's spans leave it (an OTLP endpoint is configured). Attributes that only
/// an exported span shows (OpenTelemetry's naming conventions, constants) are worth their cost
/// only then: a job holds its span for as long as it runs, thousands of parked payments at once
/// (issue 15).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Owns the tracer provider; [`Telemetry::shutdown`] flushes the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// How long shutdown waits for the last spans to reach the collector.
    pub const FLUSH_PATIENCE: Duration = Duration::from_secs(3);

    /// Flushes the queued spans to the collector, waiting at most [`Self::FLUSH_PATIENCE`].
    pub async fn shutdown(self) {
        if !exporting() {
            return;
        }
        let provider = self.provider;
        // The SDK's shutdown waits on its batch task; do that waiting off the async threads.
        let flushing = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(Self::FLUSH_PATIENCE, flushing).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not flush the last spans"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush the last spans"),
            Err(_) => tracing::warn!(patience = ?Self::FLUSH_PATIENCE, "gave up flushing the last spans"),
        }
    }
}

/// Installs the global subscriber: the console output filtered by `filter`, the OpenTelemetry
/// layer (exporting to `export`'s endpoint, if any), plus any `extra` layers, each with its own
/// filter.
///
/// # Errors
/// Fails if `filter` is not valid env-filter syntax, the endpoint is not a URL, or a global
/// subscriber is already set.
pub fn init(format: LogFormat, filter: &str, export: Export<'_>, extra: Vec<BoxedLayer>) -> anyhow::Result<Telemetry> {
    let (provider, exporting) = tracer_provider(export)?;
    let console: BoxedLayer = match format {
        LogFormat::Pretty => {
            tracing_subscriber::fmt::layer().with_target(true).with_filter(layer_filter(filter)?).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(WithTraceIds(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            ))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_filter(layer_filter(filter)?)
            .boxed(),
    };
    // Spans are made for what the log filter lets through: the request, job and publish spans
    // are `info`, so `RUST_LOG=warn` also turns tracing off.
    let mut layers = extra;
    if !export.sdk_disabled {
        let otel: BoxedLayer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("orderflow"))
            .with_location(false)
            .with_threads(false)
            // Busy and idle times cost a clock read and an extensions lookup at every poll of
            // every instrumented future (1.7 % of the binary's CPU, issue 15); no one reads them.
            .with_tracked_inactivity(false)
            .with_filter(layer_filter(filter)?)
            .boxed();
        layers.push(otel);
    }
    layers.push(console);
    tracing_subscriber::registry().with(layers).try_init().context("Failed to install the tracing subscriber")?;
    EXPORTING.store(exporting, Ordering::Relaxed);
    if let Some(endpoint) = export.endpoint.filter(|_| exporting) {
        tracing::info!(endpoint, service = export.service_name, "exporting traces over OTLP/HTTP (protobuf)");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(export: Export<'_>) -> anyhow::Result<(SdkTracerProvider, bool)> {
    // The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them;
    // parent-based always-on when unset).
    let builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(export.service_name.to_owned()).build());
    let Some(endpoint) = export.endpoint.filter(|e| !e.is_empty() && !export.sdk_disabled) else {
        return Ok((builder.build(), false));
    };
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces)
        .build()
        .context("Failed to build the OTLP span exporter")?;
    let processor = BatchSpanProcessor::builder(QuietWhenDown::new(exporter), runtime::Tokio).build();
    Ok((builder.with_span_processor(processor).build(), true))
}

/// The OTLP exporter, saying when the collector cannot take spans, at most once a minute
/// (the batch that failed is dropped; nothing waits for the collector to come back).
#[derive(Debug)]
struct QuietWhenDown<E> {
    inner: E,
    last_said: Mutex<Option<Instant>>,
}

impl<E> QuietWhenDown<E> {
    const EVERY: Duration = Duration::from_secs(60);

    fn new(inner: E) -> Self {
        QuietWhenDown { inner, last_said: Mutex::new(None) }
    }

    fn say(&self, error: &dyn fmt::Display, spans: usize) {
        let mut last = self.last_said.lock().expect("exporter log lock poisoned");
        if last.is_none_or(|at| at.elapsed() >= Self::EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                error = %error,
                spans,
                "the trace collector did not take a batch of spans; they are dropped (said at most once a minute)"
            );
        }
    }
}

impl<E: SpanExporter> SpanExporter for QuietWhenDown<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            self.say(e, spans);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The JSON event format with the current span's `trace_id` and `span_id` first on the line.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let ids = ctx.parent_span().and_then(|span| {
            tracing::dispatcher::get_default(|dispatch| tracing_opentelemetry::get_otel_context(&span.id(), dispatch))
        });
        let ids = ids.map(|cx| cx.span().span_context().clone()).filter(opentelemetry::trace::SpanContext::is_valid);
        let Some(ids) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, r#"{{"trace_id":"{}","span_id":"{}",{rest}"#, ids.trace_id(), ids.span_id()),
            None => writer.write_str(&line),
        }
    }
}

/// W3C trace context as it travels in headers: `traceparent` and, when there is one,
/// `tracestate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: Option<String>,
    /// Vendor-specific trace state, passed on unchanged.
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The longest `tracestate` passed on (the W3C limit for what a vendor must propagate);
    /// a longer one, which only a misbehaving client sends, is dropped.
    pub const MAX_TRACESTATE: usize = 512;

    /// The context of the span `span` (the current one for [`TraceHeaders::current`]), or none
    /// when it has no valid trace.
    pub fn of(span: &tracing::Span) -> Self {
        Self::of_context(&span.context())
    }

    fn of_context(cx: &Context) -> Self {
        let mut headers = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut HeaderMap(&mut headers));
        TraceHeaders {
            traceparent: headers.remove("traceparent"),
            tracestate: headers.remove("tracestate").filter(|s| !s.is_empty() && s.len() <= Self::MAX_TRACESTATE),
        }
    }

    /// The context of the current span: what an event written now carries on.
    ///
    /// That is the context the innermost entered span *with OpenTelemetry data* activated: the
    /// current tracing span may be one the tracing filter keeps from OpenTelemetry (apalis's own
    /// `debug` task span inside a job), which has no context of its own.
    pub fn current() -> Self {
        let active = Context::current();
        if active.span().span_context().is_valid() {
            Self::of_context(&active)
        } else {
            Self::of(&tracing::Span::current())
        }
    }

    /// `(traceparent, tracestate)`, as the outbox stores them.
    pub fn pair(&self) -> (Option<&str>, Option<&str>) {
        (self.traceparent.as_deref(), self.tracestate.as_deref())
    }

    /// The trace id in `traceparent`, if it has the W3C shape.
    pub fn trace_id(&self) -> Option<&str> {
        trace_id_in(self.traceparent.as_deref()?)
    }
}

/// The trace id in a W3C `traceparent` value, if it has the W3C shape.
pub fn trace_id_in(traceparent: &str) -> Option<&str> {
    traceparent.get(3..35).filter(|id| traceparent.len() >= 55 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

struct HeaderMap<'a>(&'a mut HashMap<String, String>);

impl Injector for HeaderMap<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Makes `span` continue the trace whose `traceparent`/`tracestate` `lookup` finds (by header
/// name), or start a new trace when there is none or it does not parse. Call it before anything
/// is logged in `span`.
pub fn continue_trace<'a>(span: &tracing::Span, lookup: impl Fn(&str) -> Option<&'a str>) {
    let headers: HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| lookup(name).map(|value| (name.to_owned(), value.to_owned())))
        .collect();
    let parent = TraceContextPropagator::new().extract(&headers);
    let parent = if parent.span().span_context().is_valid() { parent } else { Context::new() };
    // Fails only if the span is already started or disabled (filtered out): nothing to continue.
    let _ = span.set_parent(parent);
}

/// The trace id of `span`, if it has one (it is enabled and tracing is installed).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_read_from_a_w3c_traceparent_only() {
        let headers = |p: &str| TraceHeaders { traceparent: Some(p.into()), tracestate: None };
        let good = headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(good.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(headers("garbage").trace_id(), None);
        assert_eq!(headers("00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01").trace_id(), None);
        assert_eq!(TraceHeaders::default().trace_id(), None);
    }

    #[test]
    fn without_an_installed_tracer_a_span_carries_no_context() {
        // Nothing is installed in unit tests: no context, and nothing fails.
        let span = tracing::info_span!("job");
        continue_trace(&span, |_| Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert_eq!(TraceHeaders::of(&span), TraceHeaders::default());
        assert_eq!(trace_id(&span), None);
    }
}
