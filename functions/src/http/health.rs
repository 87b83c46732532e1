//! `GET /health/live` (the process answers) and `GET /health/ready` (it can do its work: the
//! database answers and the broker connections are up). Ready is 503 with `Retry-After` while
//! a dependency is down, so a load balancer stops sending traffic until it is back.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

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
}

#[derive(Debug, Serialize)]
struct Checks {
    database: Check,
    broker: Check,
}

/// Readiness: 200 when the database and the broker are reachable, else 503.
pub async fn ready(State(state): State<AppState>) -> Response {
    let database =
        match tokio::time::timeout(Duration::from_secs(2), sqlx::query("select 1").execute(&state.pool)).await {
            Ok(Ok(_)) => Check::Up,
            _ => Check::Down,
        };
    let broker = if state.broker.is_up() { Check::Up } else { Check::Down };
    let checks = Checks { database, broker };
    if database == Check::Up && broker == Check::Up {
        return Json(json!({ "status": "ready", "checks": checks })).into_response();
    }
    let down: Vec<&str> = [("database", database), ("broker", broker)]
        .into_iter()
        .filter(|(_, c)| *c == Check::Down)
        .map(|(name, _)| name)
        .collect();
    let body = json!({
        "status": "unavailable",
        "checks": checks,
        "error": { "code": "dependency_unavailable", "message": format!("unreachable: {}", down.join(", ")) },
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
