//! The job board: apalis-board's UI and API over the job journal, on `BOARD_ADDR`, behind HTTP
//! basic authentication with an enabled admin's credentials (the seeded `admin@example.com`,
//! whose demo password works only while the process listens on loopback alone).
//!
//! The UI is a prebuilt WASM app that expects to own `/` of its origin with its API at
//! `/api/v1`, hence its own listener. Its live log stream (`/api/v1/events`) carries the events
//! logged inside job spans, at debug level, through [`board_log_layer`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis_board::axum::{
    framework::{ApiBuilder, RegisterRoute},
    sse::{TracingBroadcaster, TracingSubscriber},
    ui::ServeUI,
};
use argon2::{Argon2, PasswordVerifier};
use axum::{
    Extension, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use base64::Engine;
use shared::{
    events::{OrderCompleted, OrderCreated, OrderExpired},
    journal::board::{ExpiryRun, JournalBackend},
    messaging::{OutboxSignal, Topology},
    telemetry::{BoxedLayer, layer_filter},
};
use sqlx::PgPool;
use tracing_subscriber::Layer;

use crate::registry::{Function, board_queue};

/// The board's live log stream.
pub type LogBroadcaster = Arc<Mutex<TracingBroadcaster>>;

/// A tracing layer feeding the board's live log stream: job events down to debug, including
/// apalis's `task` span (created at debug), which the stream needs to attribute events to jobs.
///
/// # Errors
/// Never in practice: the filter is a constant.
pub fn board_log_layer(broadcaster: &LogBroadcaster) -> anyhow::Result<BoxedLayer> {
    Ok(TracingSubscriber::new(broadcaster)
        .layer()
        .with_filter(layer_filter("info,apalis=debug,orderflow=debug,shared=debug,sqlx=warn,lapin=warn")?)
        .boxed())
}

/// The board: every function's queue registered, the UI as the fallback, all behind basic auth
/// (which accepts the demo password only if `demo_password_allowed`).
pub fn router(
    pool: PgPool,
    outbox: &OutboxSignal,
    topology: &Topology,
    broadcaster: LogBroadcaster,
    demo_password_allowed: bool,
) -> Router {
    let queues: Arc<Vec<String>> = Arc::new(Function::ALL.iter().map(|f| board_queue(*f, topology)).collect());
    let journal = Journal { pool: &pool, outbox, topology, queues: &queues };
    // The first registration also answers the board's global routes; the journal backend
    // covers every queue there.
    let api = ApiBuilder::new(Router::new());
    let api = journal.register::<OrderCreated>(api, Function::OnOrderCreated);
    let api = journal.register::<OrderCompleted>(api, Function::OnOrderCompleted);
    let api = journal.register::<OrderExpired>(api, Function::OnOrderExpired);
    let api = journal.register::<ExpiryRun>(api, Function::ExpireOrders);
    Router::new()
        .nest("/api/v1", api.build().layer(Extension(broadcaster)))
        .fallback_service(ServeUI::new())
        .layer(middleware::from_fn_with_state(BoardAuth::new(pool, demo_password_allowed), require_admin))
}

/// What every queue's journal backend is built from.
struct Journal<'a> {
    pool: &'a PgPool,
    outbox: &'a OutboxSignal,
    topology: &'a Topology,
    queues: &'a Arc<Vec<String>>,
}

impl Journal<'_> {
    fn register<Args>(&self, api: ApiBuilder<Router>, function: Function) -> ApiBuilder<Router>
    where
        ApiBuilder<Router>: RegisterRoute<JournalBackend<Args>, Args>,
    {
        let queue = board_queue(function, self.topology);
        let backend = JournalBackend::new(self.pool.clone(), self.outbox.clone(), queue.clone(), self.queues.clone());
        RegisterRoute::<_, Args>::register(api, &queue, backend)
    }
}

/// Checks board credentials against the admins in the database. argon2 is deliberately slow and
/// the UI makes many requests, so a verified `Authorization` value is remembered for a moment.
#[derive(Clone)]
struct BoardAuth {
    pool: PgPool,
    demo_password_allowed: bool,
    verified: Arc<Mutex<HashMap<String, Instant>>>,
}

/// How long verified credentials are trusted without checking the hash again: a few seconds, so
/// that a disabled or demoted admin loses the board as quickly as their API tokens.
const REMEMBER: Duration = Duration::from_secs(5);
/// Most remembered credentials.
const REMEMBER_MAX: usize = 64;

impl BoardAuth {
    fn new(pool: PgPool, demo_password_allowed: bool) -> Self {
        BoardAuth { pool, demo_password_allowed, verified: Arc::new(Mutex::new(HashMap::new())) }
    }

    fn remembered(&self, header: &str) -> bool {
        let mut verified = self.verified.lock().expect("board auth lock poisoned");
        verified.retain(|_, at| at.elapsed() < REMEMBER);
        verified.contains_key(header)
    }

    fn remember(&self, header: &str) {
        let mut verified = self.verified.lock().expect("board auth lock poisoned");
        if verified.len() >= REMEMBER_MAX {
            verified.clear();
        }
        verified.insert(header.to_owned(), Instant::now());
    }

    async fn check(&self, header: &str) -> bool {
        if self.remembered(header) {
            return true;
        }
        let Some(credentials) = header
            .strip_prefix("Basic ")
            .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
        else {
            return false;
        };
        let Some((email, password)) = credentials.split_once(':') else { return false };
        let hash = sqlx::query_scalar!(
            r#"
            select password_hash from users
            where lower(email) = lower($1) and is_admin and not disabled and (not password_is_demo or $2)
            "#,
            email,
            self.demo_password_allowed
        )
        .fetch_optional(&self.pool)
        .await;
        let Ok(Some(hash)) = hash else { return false };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
        })
        .await
        .unwrap_or(false);
        if ok {
            self.remember(header);
        }
        ok
    }
}

async fn require_admin(State(auth): State<BoardAuth>, request: Request, next: Next) -> Response {
    let authorized = match request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(header) => auth.check(header).await,
        None => false,
    };
    if authorized {
        return next.run(request).await;
    }
    let mut response = (StatusCode::UNAUTHORIZED, "the board needs an admin's e-mail and password").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="orderflow board", charset="UTF-8""#),
    );
    response
}
