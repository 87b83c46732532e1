//! The job board: apalis-board's UI and API over the job journal, on `BOARD_ADDR`, behind HTTP
//! basic authentication with an admin's credentials (the seeded `admin@example.com`).
//!
//! The UI is a prebuilt WASM app that expects to own `/` of its origin with its API at
//! `/api/v1`, hence its own listener. Its live log stream (`/api/v1/events`) carries the events
//! logged inside job spans, at debug level, while someone watches it (`live_log.rs`, [`LiveLog`]).
//!
//! This file builds the router. Beside it: `backend.rs`, the backend
//! apalis-board reads (one per queue, over the journal, its SQL in `shared::db::board`);
//! `stats.rs`, each queue's statistics, the cron's schedule and last run among them; `task.rs`,
//! from journal rows to board tasks; `args.rs`, each queue's argument type; `ui.rs`, the UI's
//! assets, patched for an upstream bug; `auth.rs`, the credentials check.

mod args;
mod auth;
mod backend;
mod live_log;
mod stats;
mod task;
mod ui;

pub use live_log::LiveLog;

use std::sync::Arc;

use apalis_board::axum::framework::{ApiBuilder, RegisterRoute};
use axum::{Extension, Router, middleware};
use shared::{
    Config,
    db::board::Unstarted,
    events::{OrderCompleted, OrderCreated, OrderExpired},
    messaging::{OutboxSignal, Topology},
};
use sqlx::PgPool;

use self::{
    args::ExpiryRun,
    auth::{BoardAuth, require_admin},
    backend::{JournalBackend, JournalConfig},
    stats::CronQueue,
};
use crate::{
    credentials::PasswordGate,
    expire_orders,
    registry::{Function, board_queue, unstarted},
};

/// The board: every function's queue registered, the UI as the fallback, all behind basic auth.
/// Credentials are checked through `passwords`, the API's gate (one pool, one throttle), and the
/// demo password is accepted only if `demo_password_allowed`.
/// The cron's queue shows the configured `EXPIRY_SCHEDULE` and when it next fires; a job may take
/// `MAX_RETRIES` + 1 attempts.
///
/// # Errors
/// `EXPIRY_SCHEDULE` is not a cron schedule.
pub fn router(
    pool: PgPool,
    outbox: &OutboxSignal,
    topology: &Topology,
    config: &Config,
    live_log: LiveLog,
    passwords: PasswordGate,
    demo_password_allowed: bool,
) -> anyhow::Result<Router> {
    let queues: Arc<Vec<String>> = Arc::new(Function::ALL.iter().map(|f| board_queue(*f, topology)).collect());
    let cron =
        CronQueue::new(board_queue(Function::ExpireOrders, topology), expire_orders::JOB, &config.expiry_schedule)?;
    let unstarted = Arc::new(unstarted(topology, config.max_attempts()));
    let backends =
        Backends { pool: &pool, outbox, topology, queues: &queues, cron: &Arc::new(cron), unstarted: &unstarted };
    // The first registration also answers the board's global routes; the journal backend
    // covers every queue there.
    let api = ApiBuilder::new(Router::new());
    let api = backends.register::<OrderCreated>(api, Function::OnOrderCreated);
    let api = backends.register::<OrderCompleted>(api, Function::OnOrderCompleted);
    let api = backends.register::<OrderExpired>(api, Function::OnOrderExpired);
    let api = backends.register::<ExpiryRun>(api, Function::ExpireOrders);
    Ok(Router::new()
        .nest(
            "/api/v1",
            api.build()
                .layer(Extension(live_log.broadcaster()))
                .layer(middleware::from_fn_with_state(live_log, live_log::count_watchers)),
        )
        .fallback(ui::serve)
        .layer(middleware::from_fn_with_state(BoardAuth::new(pool, passwords, demo_password_allowed), require_admin)))
}

/// What every queue's journal backend is built from.
struct Backends<'a> {
    pool: &'a PgPool,
    outbox: &'a OutboxSignal,
    topology: &'a Topology,
    queues: &'a Arc<Vec<String>>,
    cron: &'a Arc<CronQueue>,
    unstarted: &'a Arc<Unstarted>,
}

impl Backends<'_> {
    /// Registers the routes of `function`'s queue, whose jobs take `Args`.
    fn register<Args>(&self, api: ApiBuilder<Router>, function: Function) -> ApiBuilder<Router>
    where
        ApiBuilder<Router>: RegisterRoute<JournalBackend<Args>, Args>,
    {
        let queue = board_queue(function, self.topology);
        // Every backend knows the cron's queue: the first one lists every queue's statistics.
        let config = JournalConfig {
            queue: queue.clone(),
            all_queues: self.queues.clone(),
            cron: self.cron.clone(),
            unstarted: self.unstarted.clone(),
        };
        let backend = JournalBackend::new(self.pool.clone(), self.outbox.clone(), function, config);
        RegisterRoute::<_, Args>::register(api, &queue, backend)
    }
}
