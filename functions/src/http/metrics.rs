//! `GET /metrics` in the Prometheus/OpenMetrics text format, and the middleware that counts and
//! times every request by its route template.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use shared::{
    db::outbox,
    metrics::{HttpLabels, Metrics, RouteLabels},
};

use super::AppState;

/// Renders every metric, refreshing the outbox gauges from the database first.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus/OpenMetrics text", content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match outbox::backlog(&state.pool).await {
        Ok(backlog) => {
            state.metrics.outbox_unsent.set(backlog.unsent);
            state.metrics.outbox_parked.set(backlog.parked);
            let age =
                backlog.oldest_unsent_at.map_or(0.0, |at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0);
            state.metrics.outbox_oldest_unsent_age.set(age);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the outbox backlog for /metrics"),
    }
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Counts and times a request under its matched route (`/api/orders/{id}`, never the raw path,
/// so the label set stays small).
pub async fn track_http(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics
        .http_request_duration
        .get_or_create(&RouteLabels { method: method.clone(), route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.http_requests.get_or_create(&HttpLabels { method, route, status }).inc();
    response
}
