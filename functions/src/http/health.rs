//! `GET /health/live` (the process answers) and `GET /health/ready` (it can do its work). Ready
//! is 503 with `Retry-After` while a dependency this process's role needs is down, so a load
//! balancer stops sending traffic until it is back:
//! - an `api` or `all` process needs PostgreSQL only: while the broker is down it still takes
//!   orders, which wait in the outbox (DESIGN.md section 6.1), so taking it out of rotation
//!   would turn a broker outage into an API outage. The body shows the broker and the outbox
//!   backlog (unsent rows, the oldest one's age, parked rows) meanwhile;
//! - a `worker` needs PostgreSQL and its broker connections: without them it cannot consume.

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

/// The liveness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process is running and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "Alive", body = Liveness)))]
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// The state of one dependency.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Reachable.
    Up,
    /// Unreachable.
    Down,
    /// Reachable but behind: the oldest unpublished outbox row is older than the limit.
    Lagging,
    /// Not measured in time (counting a very large outbox backlog took too long).
    Unknown,
}

/// Each dependency's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    database: Check,
    broker: Check,
    /// `lagging` when the oldest unpublished outbox row is older than OUTBOX_LAG_LIMIT_SECS.
    outbox: Check,
    /// Age in seconds of the oldest unpublished outbox row (none when the outbox is empty).
    outbox_oldest_unsent_secs: Option<i64>,
    /// Outbox rows waiting for the relay.
    outbox_unsent: Option<i64>,
    /// Outbox rows parked after OUTBOX_MAX_ATTEMPTS refusals, waiting for a replay.
    outbox_parked: Option<i64>,
}

/// The readiness answer; `error` names what is not ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    checks: Checks,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    error: Option<serde_json::Value>,
}

/// Readiness: 200 when what this process's role needs is reachable (an API: the database; a
/// worker: the database and its broker connections), else 503.
#[utoipa::path(
    get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready (an API stays ready while the broker is down; the body shows it and the outbox backlog)", body = Readiness),
        (status = 503, description = "A dependency this role needs is down (with Retry-After)", body = Readiness),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    const PATIENCE: Duration = Duration::from_secs(2);
    // The database's answer alone decides; the backlog is measured apart, so a huge backlog
    // that is slow to count (a long broker outage) cannot make a reachable database look down.
    let database = match tokio::time::timeout(PATIENCE, shared::db::ping(&state.pool)).await {
        Ok(Ok(())) => Check::Up,
        _ => Check::Down,
    };
    let backlog = match database {
        Check::Up => tokio::time::timeout(PATIENCE, outbox::backlog(&state.pool)).await.ok().and_then(Result::ok),
        _ => None,
    };
    let (outbox, lag) = match (database, backlog) {
        (Check::Up, Some(backlog)) => {
            let lag = backlog.oldest_unsent_at.map(|at| (Utc::now() - at).num_seconds().max(0));
            let limit = i64::try_from(state.outbox_lag_limit.as_secs()).unwrap_or(i64::MAX);
            (if lag.is_some_and(|secs| secs > limit) { Check::Lagging } else { Check::Up }, lag)
        }
        (Check::Up, None) => (Check::Unknown, None),
        _ => (Check::Down, None),
    };
    let broker = if state.broker.is_up() { Check::Up } else { Check::Down };
    let checks = Checks {
        database,
        broker,
        outbox,
        outbox_oldest_unsent_secs: lag,
        outbox_unsent: backlog.map(|b| b.unsent),
        outbox_parked: backlog.map(|b| b.parked),
    };
    let mut needed = vec![("database", database)];
    if state.ready_needs_broker {
        needed.push(("broker", broker));
    }
    let failing: Vec<&str> =
        needed.into_iter().filter(|(_, check)| *check != Check::Up).map(|(name, _)| name).collect();
    if failing.is_empty() {
        return Json(Readiness { status: "ready", checks, error: None }).into_response();
    }
    let down = state.broker.down();
    let body = Readiness {
        status: "unavailable",
        checks,
        error: Some(json!({
            "code": "dependency_unavailable",
            "message": format!("not ready: {}", failing.join(", ")),
            "brokerConnectionsDown": down,
        })),
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
