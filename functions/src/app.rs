//! Start-up and the process's life: connect and migrate, then run the HTTP API, the outbox
//! relay and the functions side by side until a shutdown signal, and say which part stopped.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shared::{
    Config,
    clock::{Clock, SystemClock},
    db,
    journal::{Journal, WorkerHeartbeats},
    messaging::{BrokerHealth, OutboxRelay, OutboxSignal, Publisher, RelaySettings, Topology},
    metrics::Metrics,
    payments::{PaymentGateway, PaymentSimulator},
};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    board::{self, LogBroadcaster},
    deps::FunctionDeps,
    http::{self, AppState, DeadLetterSettings, TokenKeys},
    registry::{self, Function, WorkerSettings},
};

/// Which parts of orderflow this process runs (DESIGN.md section 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The HTTP API, the board, the outbox relay, every function and the cron: the whole system.
    All,
    /// The HTTP API, the board and the outbox relay.
    Api,
    /// The given functions (and cron), with the outbox relay (so a function's events leave at
    /// once) and health/metrics on `HTTP_ADDR`.
    Worker(Vec<Function>),
}

impl Role {
    fn functions(&self) -> &[Function] {
        match self {
            Role::All => &Function::ALL,
            Role::Api => &[],
            Role::Worker(functions) => functions,
        }
    }
}

/// What tests and benchmarks may replace: the payment outcome and the clock.
#[derive(Clone)]
pub struct Externals {
    /// Charges orders.
    pub payments: Arc<dyn PaymentGateway>,
    /// Tells the time.
    pub clock: Arc<dyn Clock>,
}

impl Externals {
    /// The production choices: the payment simulator at `PAYMENT_SUCCESS_RATE` and the system clock.
    pub fn from_config(config: &Config) -> Self {
        Externals {
            payments: Arc::new(PaymentSimulator::new(config.payment_success_rate)),
            clock: Arc::new(SystemClock),
        }
    }
}

/// How long start-up waits for PostgreSQL before giving up.
const DATABASE_PATIENCE: Duration = Duration::from_secs(60);

/// A started (bound, migrated) but not yet running orderflow process.
pub struct Application {
    config: Config,
    role: Role,
    pool: PgPool,
    publisher: Arc<Publisher>,
    state: AppState,
    externals: Externals,
    http: TcpListener,
    board: Option<TcpListener>,
    log_broadcaster: LogBroadcaster,
}

impl Application {
    /// Connects to PostgreSQL (creating the database and applying migrations) and binds the
    /// HTTP listener. The broker is not needed yet: without it the API still takes orders and
    /// the relay publishes them once it is back.
    ///
    /// # Errors
    /// PostgreSQL stayed unreachable, a migration failed, or the address is taken.
    pub async fn build(config: Config, role: Role) -> anyhow::Result<Self> {
        let externals = Externals::from_config(&config);
        Self::build_with(config, role, externals).await
    }

    /// [`Application::build`] with chosen payment gateway and clock.
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with(config: Config, role: Role, externals: Externals) -> anyhow::Result<Self> {
        let (secret, is_default) = config.jwt_secret();
        if is_default {
            tracing::warn!(
                "JWT_SECRET is not set: tokens are signed with the public development secret. \
                 Set JWT_SECRET to a long random value before exposing orderflow."
            );
        }
        let tokens = Arc::new(TokenKeys::new(secret, Duration::from_secs(config.jwt_ttl_secs)));
        let pool = db::connect_and_migrate(&config.database_url, config.db_max_connections, DATABASE_PATIENCE).await?;
        let publisher = Arc::new(Publisher::new(config.amqp_url.clone(), topology(&config)));
        let broker = BrokerHealth::default();
        broker.register("publisher", {
            let publisher = publisher.clone();
            move || publisher.is_connected()
        });
        let http = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("Failed to listen on HTTP_ADDR {}", config.http_addr))?;
        let board = match role {
            Role::All | Role::Api => Some(
                TcpListener::bind(config.board_addr)
                    .await
                    .with_context(|| format!("Failed to listen on BOARD_ADDR {}", config.board_addr))?,
            ),
            Role::Worker(_) => None,
        };
        let state = AppState {
            pool: pool.clone(),
            tokens,
            outbox: OutboxSignal::default(),
            broker,
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: config.max_body_bytes,
            outbox_lag_limit: Duration::from_secs(config.outbox_lag_limit_secs),
            dead_letters: DeadLetterSettings { amqp_url: config.amqp_url.clone(), topology: topology(&config) },
        };
        let log_broadcaster = apalis_board::axum::sse::TracingBroadcaster::create();
        Ok(Application { config, role, pool, publisher, state, externals, http, board, log_broadcaster })
    }

    /// Feeds the board's live log stream from `broadcaster` (which the process's tracing
    /// subscriber writes to); without it the stream stays empty.
    #[must_use]
    pub fn with_log_broadcaster(mut self, broadcaster: LogBroadcaster) -> Self {
        self.log_broadcaster = broadcaster;
        self
    }

    /// The address the board listens on, in the roles that serve it.
    pub fn board_addr(&self) -> Option<SocketAddr> {
        self.board.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the HTTP listener is bound to (useful with port 0).
    ///
    /// # Panics
    /// Never in practice: a bound listener has a local address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("a bound listener has an address")
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until `shutdown` is cancelled (or a part fails). Then intake stops (HTTP, queue
    /// consumers), in-flight jobs get up to `SHUTDOWN_TIMEOUT_SECS` to finish, and the relay
    /// publishes what they wrote before it stops too.
    ///
    /// # Errors
    /// The functions could not be set up (e.g. an invalid schedule).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application { config, role, pool, publisher, state, externals, http, board, log_broadcaster } = self;
        let intake = TaskTracker::new();
        // Any part ending stops the others: a process that lost its API should not linger.
        let stop = shutdown.child_token();
        // The relay and the journal outlive intake so that the last jobs' events still leave
        // and their last attempts are still journaled.
        let stop_relay = CancellationToken::new();
        let (journal, journal_writer) = Journal::new(pool.clone(), state.metrics.clone());
        let journal_writer = tokio::spawn(journal_writer.run(stop_relay.clone()));
        tokio::spawn(shared::retention::prune(
            pool.clone(),
            Duration::from_secs(config.journal_retention_hours * 3600),
            Duration::from_secs(600),
            stop.clone(),
        ));

        let deps = FunctionDeps::new(
            pool.clone(),
            config.db_max_connections,
            externals.payments,
            externals.clock,
            state.outbox.clone(),
            config.payment_delay(),
            Duration::from_secs(config.order_ttl_secs),
            stop.clone(),
            drain_budget(config.shutdown_timeout()),
        );
        let functions = role.functions();
        if !functions.is_empty() {
            let settings = WorkerSettings {
                amqp_url: config.amqp_url.clone(),
                topology: topology(&config),
                prefetch: config.worker_prefetch,
                max_retries: config.max_retries,
                retry_base: Duration::from_millis(config.retry_base_ms),
                expiry_schedule: config.expiry_schedule.clone(),
                shutdown_timeout: drain_budget(config.shutdown_timeout()),
                process_name: process_name(),
                journal: journal.clone(),
                metrics: state.metrics.clone(),
            };
            let (monitor, live) = registry::monitor(functions, &deps, &settings, &state.broker)?;
            tokio::spawn(WorkerHeartbeats::new(pool.clone(), settings.process_name, live).run(stop.clone()));
            let names: Vec<_> = functions.iter().map(|f| f.name()).collect();
            tracing::info!(functions = ?names, prefetch = config.worker_prefetch, "starting functions");
            intake.spawn(supervised("functions", stop.clone(), {
                let stop = stop.clone();
                async move {
                    monitor
                        .run_with_signal(async move {
                            stop.cancelled().await;
                            Ok(())
                        })
                        .await
                        .context("The functions' monitor failed")
                }
            }));
        }

        let relay = OutboxRelay::new(
            pool.clone(),
            publisher,
            state.outbox.clone(),
            state.metrics.clone(),
            RelaySettings {
                batch_size: config.outbox_batch_size,
                poll_interval: config.outbox_poll_interval(),
                max_attempts: i32::try_from(config.max_retries + 1).unwrap_or(i32::MAX),
            },
        )
        .journaling_to(journal.clone());
        let relay = tokio::spawn(supervised("outbox relay", stop.clone(), {
            let stop_relay = stop_relay.clone();
            async move {
                relay.run(stop_relay).await;
                Ok(())
            }
        }));

        if let Some(board_listener) = board {
            let schedule = &config.expiry_schedule;
            let router = board::router(pool.clone(), &state.outbox, &topology(&config), schedule, log_broadcaster)?;
            tracing::info!(board.addr = %board_listener.local_addr()?, "job board listening");
            intake.spawn(supervised("board", stop.clone(), {
                let stop = stop.clone();
                async move {
                    axum::serve(board_listener, router)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await
                        .context("The board server failed")
                }
            }));
        }

        let router = match role {
            Role::All | Role::Api => http::router(state),
            Role::Worker(_) => http::operations_router(state),
        };
        tracing::info!(role = ?role, http.addr = %http.local_addr()?, "orderflow started");
        intake.spawn(supervised("HTTP server", stop.clone(), {
            let stop = stop.clone();
            async move {
                axum::serve(http, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .context("The HTTP server failed")
            }
        }));

        intake.close();
        stop.cancelled().await;
        tracing::info!(timeout_secs = config.shutdown_timeout_secs, "shutting down: letting in-flight work finish");
        // One deadline for everything, so the process exits within SHUTDOWN_TIMEOUT_SECS: jobs
        // drain until shortly before it, the relay and the journal flush in what is left.
        let started = tokio::time::Instant::now();
        let deadline = started + config.shutdown_timeout();
        let drained =
            tokio::time::timeout_at(started + drain_budget(config.shutdown_timeout()), intake.wait()).await.is_ok();
        if !drained {
            tracing::warn!("in-flight work did not finish within the shutdown timeout; it will be redelivered");
        }
        stop_relay.cancel();
        let flushed = tokio::time::timeout_at(deadline, async {
            let _ = tokio::join!(relay, journal_writer);
        });
        if flushed.await.is_err() {
            tracing::warn!("the outbox relay or the job journal did not finish in time; unsent rows go out later");
        }
        pool.close().await;
        tracing::info!("orderflow stopped");
        Ok(())
    }
}

/// How long in-flight jobs may take once shutdown starts: the shutdown timeout less a moment
/// (a second at most) kept for the relay and the journal to flush what the last jobs wrote.
fn drain_budget(shutdown_timeout: Duration) -> Duration {
    shutdown_timeout - (shutdown_timeout / 4).min(Duration::from_secs(1))
}

fn topology(config: &Config) -> Topology {
    Topology::new(config.queue_prefix.clone(), config.queue_type)
}

/// `<host>-<pid>`: tells the workers of several processes apart in logs, the journal and cron runs.
fn process_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// Runs one part of the process; when it ends, says so and stops the others.
async fn supervised(name: &'static str, stop: CancellationToken, part: impl Future<Output = anyhow::Result<()>>) {
    match part.await {
        Ok(()) if stop.is_cancelled() => tracing::debug!(part = name, "stopped"),
        Ok(()) => tracing::error!(part = name, "stopped unexpectedly; shutting the process down"),
        Err(e) => tracing::error!(part = name, error = %format!("{e:#}"), "failed; shutting the process down"),
    }
    stop.cancel();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
