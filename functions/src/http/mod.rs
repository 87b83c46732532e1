//! The HTTP API (DESIGN.md section 4): thin functions that validate, write and respond.
//! One file per endpoint; [`router`] lists them all.

mod accounts;
mod auth;
mod create_order;
mod create_user;
mod dead_letters;
mod error;
mod extract;
mod get_order;
mod health;
mod integral;
mod list_notifications;
mod list_orders;
mod list_products;
mod list_users;
mod login;
mod metrics;
mod order_events;
mod update_user;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef, Request},
    http::{HeaderName, HeaderValue, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use shared::{
    messaging::{BrokerHealth, OutboxSignal},
    metrics::Metrics,
};
use sqlx::PgPool;
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, sensitive_headers::SetSensitiveRequestHeadersLayer, trace::TraceLayer};
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::credentials::PasswordGate;

pub use accounts::Accounts;
pub use auth::{AuthUser, TokenKeys};
pub use error::{ApiError, ErrorBody};
pub use extract::{ApiJson, ApiPath, ApiQuery, BodyLimit, ClientAddress};

/// What HTTP functions need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Token signing and checking.
    pub tokens: Arc<TokenKeys>,
    /// Each user's current state, and whether the demo password is accepted here.
    pub accounts: Accounts,
    /// Wakes the outbox relay after a commit that wrote outbox rows.
    pub outbox: OutboxSignal,
    /// Broker connection health, for readiness.
    pub broker: BrokerHealth,
    /// Whether readiness needs the broker: a worker's does (it cannot consume without it); an
    /// API's does not (orders wait in the outbox while the broker is down).
    pub ready_needs_broker: bool,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` replays its order (`IDEMPOTENCY_TTL_HOURS`).
    pub idempotency_ttl: std::time::Duration,
    /// Readiness shows the outbox as lagging when its oldest unpublished row is older than this.
    pub outbox_lag_limit: std::time::Duration,
    /// Where dead letters are read and replayed.
    pub dead_letters: DeadLetterSettings,
    /// Checks passwords (bounded and throttled), shared with the board.
    pub passwords: PasswordGate,
}

/// How to reach the error queues.
#[derive(Clone, Debug)]
pub struct DeadLetterSettings {
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Queue names.
    pub topology: shared::messaging::Topology,
    /// The bound on each broker call (`BROKER_TIMEOUT_SECS`).
    pub broker_timeout: std::time::Duration,
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

/// Where the OpenAPI document is served.
const OPENAPI_PATH: &str = "/api/openapi.json";

/// The full API: public routes, token-protected `/api` routes, health and metrics, and its
/// documentation (`/api/openapi.json`, and the interactive page at `/docs`).
pub fn router(state: AppState) -> Router {
    let protect = |routes: OpenApiRouter<AppState>| {
        routes.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_auth))
    };
    let (routes, spec) = documented_routes(protect).split_for_parts();
    finish(routes.merge(docs(spec)), state)
}

/// The OpenAPI document of [`router`], generated from the handlers and types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    // The token check is a layer over the routes; it adds nothing to the document.
    documented_routes(|routes| routes).into_openapi()
}

/// Every API route, registered together with its OpenAPI description, so the two cannot drift.
/// `protect` puts the token check over the routes that need a token.
fn documented_routes(
    protect: impl FnOnce(OpenApiRouter<AppState>) -> OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let protected = OpenApiRouter::new()
        .routes(routes!(create_order::create_order, list_orders::list_orders))
        .routes(routes!(get_order::get_order))
        .routes(routes!(order_events::order_events))
        .routes(routes!(list_notifications::list_notifications))
        .routes(routes!(list_products::list_products))
        .routes(routes!(list_users::list_users, create_user::create_user))
        .routes(routes!(update_user::update_user))
        .routes(routes!(dead_letters::list_dead_letters))
        .routes(routes!(dead_letters::replay_dead_letters));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(protect(protected))
        .routes(routes!(login::login))
        .merge(operations_routes())
}

/// The OpenAPI document at [`OPENAPI_PATH`] and Swagger UI at `/docs`, whose assets are compiled
/// into the binary (utoipa-swagger-ui's `vendored` Swagger UI): the page loads nothing from
/// another host. The validator badge is off, as it would send the document to swagger.io.
fn docs(spec: utoipa::openapi::OpenApi) -> Router<AppState> {
    let config = utoipa_swagger_ui::Config::new([OPENAPI_PATH]).validator_url("none");
    Router::from(utoipa_swagger_ui::SwaggerUi::new("/docs").url(OPENAPI_PATH, spec).config(config))
}

/// Health and metrics only: what a worker process serves.
pub fn operations_router(state: AppState) -> Router {
    finish(Router::from(operations_routes()), state)
}

fn operations_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health::live)).routes(routes!(health::ready)).routes(routes!(metrics::metrics))
}

/// The document's frame: title, the bearer scheme, tags.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "orderflow",
        description = "Event-driven order processing. Log in with POST /api/auth/login and send the token as \
                       `Authorization: Bearer <token>`. Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Tokens"),
        (name = "orders", description = "Orders, their notifications and their timeline"),
        (name = "catalogue", description = "Seeded products"),
        (name = "users", description = "Who may log in, managed by admins"),
        (name = "operations", description = "Health, metrics and dead letters")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// JSON fallbacks, per-route metrics, and the layers every request passes, outermost first:
/// request id, secret-header redaction, tracing, panic catching, body limit.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    // The method, path, request id and status every log line of the request shows; for a span
    // that is exported, OpenTelemetry's HTTP server conventions too (`<method> <route>`). It
    // continues the caller's `traceparent` (or starts a trace when it is missing or does not
    // parse).
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            use tracing::field::Empty;
            let request_id = request.extensions().get::<RequestId>().map_or("", |id| id.0.as_str());
            let span = tracing::info_span!(
                "http",
                otel.name = Empty,
                otel.kind = Empty,
                otel.status_code = Empty,
                http.request.method = %request.method(),
                http.route = Empty,
                url.path = %request.uri().path(),
                http.response.status_code = Empty,
                request.id = %request_id,
            );
            if shared::telemetry::exporting() {
                let route =
                    request.extensions().get::<axum::extract::MatchedPath>().map(axum::extract::MatchedPath::as_str);
                span.record(
                    "otel.name",
                    format_args!("{} {}", request.method(), route.unwrap_or("")).to_string().trim_end(),
                );
                span.record("otel.kind", "server");
                if let Some(route) = route {
                    span.record("http.route", route);
                }
            }
            shared::telemetry::continue_trace(&span, |name| {
                request.headers().get(name).and_then(|value| value.to_str().ok())
            });
            span
        })
        .on_response(record_status);
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
        // A layer, not a route layer: unmatched paths are counted too (as `unmatched`).
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track_http))
        .layer(layers)
        .with_state(state)
}

/// Records the response's status on the request's span (an error status for a 5xx).
fn record_status<B>(response: &axum::http::Response<B>, _latency: std::time::Duration, span: &tracing::Span) {
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn test_state(pool: PgPool) -> AppState {
        AppState {
            pool,
            tokens: Arc::new(TokenKeys::new("a-secret-for-tests-only", std::time::Duration::from_secs(60))),
            accounts: Accounts::new(true),
            outbox: OutboxSignal::default(),
            broker: BrokerHealth::default(),
            ready_needs_broker: false,
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: 1024,
            idempotency_ttl: std::time::Duration::from_secs(3600),
            outbox_lag_limit: std::time::Duration::from_secs(60),
            dead_letters: DeadLetterSettings {
                amqp_url: "amqp://localhost".into(),
                topology: shared::messaging::Topology::new("", shared::config::QueueType::Classic),
                broker_timeout: std::time::Duration::from_secs(10),
            },
            passwords: PasswordGate::from_config(&shared::Config::from_env()),
        }
    }

    /// Every (method, path) the router serves, read from its `Debug` form: axum has no route
    /// listing, but `Router`'s `Debug` names each route's path and allowed methods. axum is
    /// pinned, and a format change makes this fail loudly rather than pass vacuously.
    fn served_routes(router: &Router) -> std::collections::BTreeSet<(String, String)> {
        let text = format!("{router:?}");
        let routes_part = text.split("fallback_router").next().unwrap();
        let id_after = |s: &str| s.split(')').next().unwrap().to_owned();
        let mut methods = std::collections::HashMap::new();
        for chunk in routes_part.split("RouteId(").skip(1) {
            if let Some(allow) = chunk.split("allow_header: Bytes(b\"").nth(1) {
                methods.insert(id_after(chunk), allow.split('"').next().unwrap().to_owned());
            }
        }
        let paths_part = routes_part.split("paths: {").nth(1).expect("no `paths` in Router's Debug output");
        let mut served = std::collections::BTreeSet::new();
        for chunk in paths_part.split("RouteId(").skip(1) {
            let path = chunk.split('"').nth(1).unwrap().to_owned();
            let allowed = methods.get(&id_after(chunk)).unwrap_or_else(|| panic!("no methods for {path}"));
            for method in allowed.split(',').filter(|m| *m != "HEAD") {
                served.insert((method.to_owned(), path.clone()));
            }
        }
        assert!(served.len() > 10, "could not read the routes from {text}");
        served
    }

    #[tokio::test]
    async fn every_route_the_router_serves_is_in_the_openapi_document_and_back() {
        let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://localhost/unused").unwrap();
        let served = served_routes(&router(test_state(pool)));
        let spec = openapi();
        let documented: std::collections::BTreeSet<(String, String)> = spec
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ];
                methods.into_iter().filter(|(_, present)| *present).map(move |(m, _)| (m.to_owned(), path.clone()))
            })
            .collect();
        // The documentation's own routes describe the document rather than the API.
        let own: Vec<_> = [OPENAPI_PATH, "/docs", "/docs/", "/docs/{*rest}"]
            .into_iter()
            .map(|path| ("GET".to_owned(), path.to_owned()))
            .collect();
        let undocumented: Vec<_> = served.iter().filter(|r| !documented.contains(*r) && !own.contains(r)).collect();
        let unserved: Vec<_> = documented.iter().filter(|r| !served.contains(*r)).collect();
        assert!(undocumented.is_empty(), "served but not in the OpenAPI document: {undocumented:?}");
        assert!(unserved.is_empty(), "in the OpenAPI document but not served: {unserved:?}");
    }

    /// utoipa's bounds take literals only; this keeps each one equal to the constant the server
    /// checks, so the document cannot drift from the code.
    #[test]
    fn the_documents_bounds_are_the_constants_the_server_checks() {
        let spec = serde_json::to_value(openapi()).unwrap();
        let param = |path: &str, method: &str, name: &str| -> serde_json::Value {
            let params = spec["paths"][path][method]["parameters"].as_array().unwrap();
            params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no {name} on {path}"))["schema"].clone()
        };
        let field = |component: &str, name: &str| spec["components"]["schemas"][component]["properties"][name].clone();
        let as_usize = |v: &serde_json::Value| usize::try_from(v.as_u64().unwrap()).unwrap();

        assert_eq!(param("/api/orders", "get", "page")["maximum"], list_orders::MAX_PAGE);
        assert_eq!(param("/api/orders", "get", "pageSize")["maximum"], list_orders::MAX_PAGE_SIZE);
        assert_eq!(field("CreateOrderRequest", "quantity")["maximum"], shared::domain::NewOrder::MAX_QUANTITY);
        let key = param("/api/orders", "post", "Idempotency-Key");
        assert_eq!(as_usize(&key["maxLength"]), create_order::MAX_IDEMPOTENCY_KEY_LEN);
        assert_eq!(as_usize(&param("/api/dead-letters", "get", "limit")["maximum"]), dead_letters::MAX_LIMIT);

        use shared::domain::account;
        let create_user = |name: &str| field("CreateUserRequest", name);
        assert_eq!(as_usize(&create_user("email")["maxLength"]), account::MAX_EMAIL_BYTES);
        for name in [create_user("name"), field("UpdateUserRequest", "name")] {
            assert_eq!(as_usize(&name["maxLength"]), account::MAX_NAME_CHARS);
        }
        for password in [create_user("password"), field("UpdateUserRequest", "password")] {
            assert_eq!(as_usize(&password["minLength"]), account::MIN_PASSWORD_CHARS);
            assert_eq!(as_usize(&password["maxLength"]), account::MAX_PASSWORD_BYTES);
        }
    }

    #[test]
    fn every_operation_documents_its_errors() {
        let spec = serde_json::to_value(openapi()).unwrap();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                let public = ["/health/live", "/health/ready", "/metrics"].contains(&path.as_str());
                let has_error = responses.keys().any(|code| code.starts_with('4') || code.starts_with('5'));
                assert!(public || has_error, "{method} {path} documents no error response");
                if operation.get("security").is_some() {
                    assert!(responses.contains_key("401"), "{method} {path} needs a token but documents no 401");
                }
                // A body can be malformed, too large or not JSON; a parameter can be malformed.
                if operation.get("requestBody").is_some() {
                    for code in ["400", "413", "415"] {
                        assert!(responses.contains_key(code), "{method} {path} takes a body but documents no {code}");
                    }
                }
                if operation.get("parameters").is_some_and(|p| p.as_array().is_some_and(|p| !p.is_empty())) {
                    assert!(responses.contains_key("400"), "{method} {path} takes parameters but documents no 400");
                }
                // Every API operation reads the database or the broker: either can be down.
                if path.starts_with("/api/") {
                    assert!(responses.contains_key("503"), "{method} {path} documents no 503");
                }
            }
        }
    }
}
