//! The job board: apalis-board's UI and API over the job journal, on `BOARD_ADDR`, behind HTTP
//! basic authentication with an admin's credentials (the seeded `admin@example.com`).
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

use crate::{
    credentials::{self, PasswordGate, Refused},
    registry::{Function, board_queue},
};

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
/// checked through `passwords` (the API's gate: one pool, one throttle).
pub fn router(
    pool: PgPool,
    outbox: &OutboxSignal,
    topology: &Topology,
    broadcaster: LogBroadcaster,
    passwords: PasswordGate,
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
        .layer(middleware::from_fn_with_state(BoardAuth::new(pool, passwords), require_admin))
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
/// the UI makes many requests, so a verified `Authorization` value is remembered for a while.
/// An unknown or non-admin e-mail is checked against the decoy hash, so the answer's timing and
/// throttling say nothing about which e-mails are admins.
#[derive(Clone)]
struct BoardAuth {
    pool: PgPool,
    passwords: PasswordGate,
    verified: Arc<Mutex<HashMap<String, Instant>>>,
}

/// How long verified credentials are trusted without checking the hash again.
const REMEMBER: Duration = Duration::from_secs(300);
/// Most remembered credentials.
const REMEMBER_MAX: usize = 64;

impl BoardAuth {
    fn new(pool: PgPool, passwords: PasswordGate) -> Self {
        BoardAuth { pool, passwords, verified: Arc::new(Mutex::new(HashMap::new())) }
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

    async fn check(&self, header: &str, client: std::net::IpAddr) -> Result<bool, Refused> {
        if self.remembered(header) {
            return Ok(true);
        }
        let Some(credentials) = header
            .strip_prefix("Basic ")
            .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
        else {
            return Ok(false);
        };
        let Some((email, password)) = credentials.split_once(':') else { return Ok(false) };
        let admitted = self.passwords.admit(email, client)?;
        let hash =
            sqlx::query_scalar!("select password_hash from users where lower(email) = lower($1) and is_admin", email)
                .fetch_optional(&self.pool)
                .await;
        // No early return: an unknown e-mail, a non-admin and an unreachable database all check
        // the decoy hash.
        let ok = admitted.verify(password.to_owned(), hash.ok().flatten()).await;
        if ok {
            self.remember(header);
        }
        Ok(ok)
    }
}

async fn require_admin(State(auth): State<BoardAuth>, request: Request, next: Next) -> Response {
    let client = credentials::client_address(request.extensions());
    let authorized = match request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(header) => auth.check(header, client).await,
        None => Ok(false),
    };
    match authorized {
        Ok(true) => return next.run(request).await,
        Ok(false) => {}
        Err(refused) => {
            let secs = refused.retry_after_secs();
            let message = format!("too many attempts; retry in {secs} s");
            let mut response = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return response;
        }
    }
    let mut response = (StatusCode::UNAUTHORIZED, "the board needs an admin's e-mail and password").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="orderflow board", charset="UTF-8""#),
    );
    response
}
