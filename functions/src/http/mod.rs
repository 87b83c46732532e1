//! The HTTP API (DESIGN.md section 4): thin functions that validate, write and respond.
//! One file per endpoint; [`router`] lists them all.

mod auth;
mod create_order;
mod dead_letters;
mod error;
mod extract;
mod get_order;
mod health;
mod list_notifications;
mod list_orders;
mod list_products;
mod list_users;
mod login;
mod metrics;
mod order_events;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef, Request},
    http::{HeaderName, HeaderValue, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use shared::{
    messaging::{BrokerHealth, OutboxSignal},
    metrics::Metrics,
};
use sqlx::PgPool;
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, sensitive_headers::SetSensitiveRequestHeadersLayer, trace::TraceLayer};
use uuid::Uuid;

pub use auth::{AuthUser, TokenKeys};
pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery, BodyLimit};

/// What HTTP functions need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Token signing and checking.
    pub tokens: Arc<TokenKeys>,
    /// Wakes the outbox relay after a commit that wrote outbox rows.
    pub outbox: OutboxSignal,
    /// Broker connection health, for readiness.
    pub broker: BrokerHealth,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Readiness fails when the oldest unpublished outbox row is older than this.
    pub outbox_lag_limit: std::time::Duration,
    /// Where dead letters are read and replayed.
    pub dead_letters: DeadLetterSettings,
}

/// How to reach the error queues.
#[derive(Clone, Debug)]
pub struct DeadLetterSettings {
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Queue names.
    pub topology: shared::messaging::Topology,
}

impl FromRef<AppState> for Arc<TokenKeys> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

/// The id of the request, from a client's `X-Request-Id` or generated; it becomes the
/// `correlation_id` of every message the request causes.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The full API: public routes, token-protected `/api` routes, health and metrics.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/orders", post(create_order::create_order).get(list_orders::list_orders))
        .route("/api/orders/{id}", get(get_order::get_order))
        .route("/api/orders/{id}/events", get(order_events::order_events))
        .route("/api/dead-letters", get(dead_letters::list_dead_letters))
        .route("/api/dead-letters/replay", post(dead_letters::replay_dead_letters))
        .route("/api/notifications", get(list_notifications::list_notifications))
        .route("/api/products", get(list_products::list_products))
        .route("/api/users", get(list_users::list_users))
        .route_layer(middleware::from_fn_with_state(state.tokens.clone(), auth::require_auth));
    let public = Router::new().route("/api/auth/login", post(login::login));
    finish(Router::new().merge(protected).merge(public).merge(operations_routes()), state)
}

/// Health and metrics only: what a worker process serves.
pub fn operations_router(state: AppState) -> Router {
    finish(operations_routes(), state)
}

fn operations_routes() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(metrics::metrics))
}

/// JSON fallbacks, per-route metrics, and the layers every request passes, outermost first:
/// request id, secret-header redaction, tracing, panic catching, body limit.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let request_id = request.extensions().get::<RequestId>().map_or("", |id| id.0.as_str());
        tracing::info_span!(
            "http",
            http.method = %request.method(),
            http.path = %request.uri().path(),
            request.id = %request_id,
        )
    });
    let layers = ServiceBuilder::new()
        .layer(middleware::from_fn(assign_request_id))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .layer(trace)
        .layer(CatchPanicLayer::custom(|_panic| {
            ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(axum::Extension(BodyLimit(state.max_body_bytes)))
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track_http))
        .layer(layers)
        .with_state(state)
}

async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
