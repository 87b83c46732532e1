//! `GET /metrics` in the Prometheus/OpenMetrics text format, and the middleware that counts and
//! times every request by its route template.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, Method, header},
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

/// Counts and times a request under its matched route (`/api/orders/{id}`, never the raw path)
/// and its method, both from bounded sets (see [`method_label`], [`route_label`]), so that no
/// client can grow `/metrics`.
pub async fn track_http(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = route_label(request.extensions().get::<MatchedPath>());
    let method = method_label(request.method()).to_owned();
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

/// A method's label: one of HTTP's standard methods, or `_OTHER` for any other (OpenTelemetry's
/// convention), since a client may send any token as a method.
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ]
    .iter()
    .find(|known| *known == method)
    .map_or("_OTHER", |known| known.as_str())
}

/// A route's label: its template, or `unmatched` for every path no route matches.
fn route_label(matched: Option<&MatchedPath>) -> String {
    matched.map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name_and_every_other_method_is_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up: Vec<_> =
            (1..=300).map(|n| method_label(&Method::from_bytes(format!("M{n}").as_bytes()).unwrap())).collect();
        assert!(made_up.iter().all(|label| *label == "_OTHER"), "{made_up:?}");
    }

    #[test]
    fn a_request_no_route_matched_is_labelled_unmatched() {
        assert_eq!(route_label(None), "unmatched");
    }
}
