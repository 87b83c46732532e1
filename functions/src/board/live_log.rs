//! The board's live log (`/api/v1/events`, a server-sent event stream): [`LiveLog`] owns the
//! broadcaster that apalis-board's stream reads and the tracing layer that feeds it.
//!
//! apalis-board's layer formats every event it is given as JSON, parses it back and hands it to
//! each client, whether or not any client is connected, and it wants events down to `debug`
//! (apalis's own task span among them). Per order that is most of the process's logging work,
//! so the layer takes events only while a client watches: the stream's requests are counted
//! ([`count_watchers`]), and the layer's filter asks the count first, one atomic load per event.
//! A process that serves no board does not install the layer at all.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use apalis_board::axum::sse::{TracingBroadcaster, TracingSubscriber};
use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use futures::StreamExt;
use shared::telemetry::BoxedLayer;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, dynamic_filter_fn},
};

/// What the live log takes: job events down to debug, including apalis's `task` span (created at
/// debug), which the stream needs to attribute events to jobs.
const DIRECTIVES: &str = "info,apalis=debug,orderflow=debug,shared=debug,sqlx=warn,lapin=warn";

/// The board's live log stream and the count of clients watching it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveLog {
    broadcaster: Arc<Mutex<TracingBroadcaster>>,
    watchers: Arc<AtomicUsize>,
}

impl LiveLog {
    /// A stream nobody watches yet.
    pub fn new() -> Self {
        LiveLog::default()
    }

    /// The tracing layer feeding the stream, taking events only while a client watches.
    ///
    /// # Errors
    /// Never in practice: the filter is a constant.
    pub fn layer(&self) -> anyhow::Result<BoxedLayer> {
        let watchers = self.watchers.clone();
        let watched = dynamic_filter_fn(move |_, _| watchers.load(Ordering::Relaxed) > 0);
        // The count first: while nobody watches, the directives are not even consulted. Being
        // dynamic, it also keeps the per-layer filter state fresh (tokio-rs/tracing#2519; see
        // `shared::telemetry::layer_filter`).
        let filter = watched.and(EnvFilter::try_new(DIRECTIVES)?);
        Ok(TracingSubscriber::new(&self.broadcaster).layer().with_filter(filter).boxed())
    }

    /// The broadcaster apalis-board's stream endpoint reads.
    pub fn broadcaster(&self) -> Arc<Mutex<TracingBroadcaster>> {
        self.broadcaster.clone()
    }

    /// Clients watching the stream now.
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }
}

/// Middleware on the board's API: a request for the stream counts as a watcher until its
/// response body is dropped (the client went away, or the server shut down).
pub async fn count_watchers(State(live_log): State<LiveLog>, request: Request, next: Next) -> Response {
    if !request.uri().path().ends_with("/events") {
        return next.run(request).await;
    }
    let watching = Watching::new(&live_log.watchers);
    let response = next.run(request).await;
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _still_watching = &watching;
            chunk
        }))
    })
}

/// One watcher, counted while it lives.
struct Watching(Arc<AtomicUsize>);

impl Watching {
    fn new(watchers: &Arc<AtomicUsize>) -> Self {
        watchers.fetch_add(1, Ordering::Relaxed);
        Watching(watchers.clone())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
