//! `GET /health/live` (the process answers) and `GET /health/ready` (it can do its work: the
//! database answers, the broker connections are up, and the outbox relay keeps up). Ready is
//! 503 with `Retry-After` while a dependency is down, so a load balancer stops sending traffic
//! until it is back.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use shared::db::outbox;

use super::AppState;

/// Liveness: the process is running and serving HTTP.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The state of one dependency.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Reachable.
    Up,
    /// Unreachable.
    Down,
    /// Reachable but behind: the oldest unpublished outbox row is older than the limit.
    Lagging,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Checks {
    database: Check,
    broker: Check,
    outbox: Check,
    outbox_oldest_unsent_secs: Option<i64>,
}

/// Readiness: 200 when the database and the broker are reachable and the outbox is not lagging,
/// else 503.
pub async fn ready(State(state): State<AppState>) -> Response {
    let backlog = tokio::time::timeout(Duration::from_secs(2), outbox::backlog(&state.pool)).await;
    let (database, outbox, lag) = match backlog {
        Ok(Ok(backlog)) => {
            let lag = backlog.oldest_unsent_at.map(|at| (Utc::now() - at).num_seconds().max(0));
            let limit = i64::try_from(state.outbox_lag_limit.as_secs()).unwrap_or(i64::MAX);
            let outbox = if lag.is_some_and(|secs| secs > limit) { Check::Lagging } else { Check::Up };
            (Check::Up, outbox, lag)
        }
        _ => (Check::Down, Check::Down, None),
    };
    let broker = if state.broker.is_up() { Check::Up } else { Check::Down };
    let checks = Checks { database, broker, outbox, outbox_oldest_unsent_secs: lag };
    let failing: Vec<&str> = [("database", database), ("broker", broker), ("outbox", outbox)]
        .into_iter()
        .filter(|(_, check)| *check != Check::Up)
        .map(|(name, _)| name)
        .collect();
    if failing.is_empty() {
        return Json(json!({ "status": "ready", "checks": checks })).into_response();
    }
    let down = state.broker.down();
    let body = json!({
        "status": "unavailable",
        "checks": checks,
        "error": {
            "code": "dependency_unavailable",
            "message": format!("not ready: {}", failing.join(", ")),
            "brokerConnectionsDown": down,
        },
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
