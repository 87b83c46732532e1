//! Tracing set-up: pretty lines for people, JSON for machines (`LOG_FORMAT`), filtered by `RUST_LOG`.
//!
//! Log fields are dotted (`order.id`, `message.id`); secrets and tokens are never logged.

use anyhow::Context;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    filter::{FilterExt, dynamic_filter_fn},
    layer::{Filter, SubscriberExt},
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

/// Installs the global subscriber: the console output filtered by `filter`, plus any `extra`
/// layers, each with its own filter.
///
/// # Errors
/// Fails if `filter` is not valid env-filter syntax or a global subscriber is already set.
pub fn init(format: LogFormat, filter: &str, extra: Vec<BoxedLayer>) -> anyhow::Result<()> {
    let console: BoxedLayer = match format {
        LogFormat::Pretty => {
            tracing_subscriber::fmt::layer().with_target(true).with_filter(layer_filter(filter)?).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(layer_filter(filter)?)
            .boxed(),
    };
    let mut layers = extra;
    layers.push(console);
    tracing_subscriber::registry().with(layers).try_init().context("Failed to install the tracing subscriber")
}
