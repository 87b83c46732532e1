//! Start-up and the process's life: connect and migrate, then run the HTTP API, the outbox
//! relay and the functions side by side until a shutdown signal, and say which part stopped.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shared::{
    Config, db,
    messaging::{BrokerHealth, OutboxRelay, OutboxSignal, Publisher, Topology},
    metrics::Metrics,
};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::http::{self, AppState, TokenKeys};

/// Which parts of orderflow this process runs (DESIGN.md section 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The HTTP API, the outbox relay, every function and the cron: the whole system.
    All,
    /// The HTTP API and the outbox relay.
    Api,
    /// Functions and cron, with the outbox relay (so a function's events leave at once) and
    /// health/metrics on `HTTP_ADDR`.
    Worker,
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
    http: TcpListener,
}

impl Application {
    /// Connects to PostgreSQL (creating the database and applying migrations) and binds the
    /// HTTP listener. The broker is not needed yet: without it the API still takes orders and
    /// the relay publishes them once it is back.
    ///
    /// # Errors
    /// PostgreSQL stayed unreachable, a migration failed, or the address is taken.
    pub async fn build(config: Config, role: Role) -> anyhow::Result<Self> {
        let (secret, is_default) = config.jwt_secret();
        if is_default {
            tracing::warn!(
                "JWT_SECRET is not set: tokens are signed with the public development secret. \
                 Set JWT_SECRET to a long random value before exposing orderflow."
            );
        }
        let tokens = Arc::new(TokenKeys::new(secret, Duration::from_secs(config.jwt_ttl_secs)));
        let pool = db::connect_and_migrate(&config.database_url, config.db_max_connections, DATABASE_PATIENCE).await?;
        let topology = Topology::new(config.queue_prefix.clone(), config.queue_type);
        let publisher = Arc::new(Publisher::new(config.amqp_url.clone(), topology));
        let broker = BrokerHealth::default();
        broker.register("publisher", {
            let publisher = publisher.clone();
            move || publisher.is_connected()
        });
        let http = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("Failed to listen on HTTP_ADDR {}", config.http_addr))?;
        let state = AppState {
            pool: pool.clone(),
            tokens,
            outbox: OutboxSignal::default(),
            broker,
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: config.max_body_bytes,
        };
        Ok(Application { config, role, pool, publisher, state, http })
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

    /// Runs until `shutdown` is cancelled (or a part fails), then gives in-flight work up to
    /// `SHUTDOWN_TIMEOUT_SECS` to finish.
    ///
    /// # Errors
    /// A part stopped with an error.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application { config, role, pool, publisher, state, http } = self;
        let tasks = TaskTracker::new();
        // Any part ending cancels the others: a process that lost its API should not linger.
        let stop = shutdown.child_token();

        let relay = OutboxRelay::new(
            pool.clone(),
            publisher,
            state.outbox.clone(),
            state.metrics.clone(),
            config.outbox_batch_size,
            config.outbox_poll_interval(),
        );
        tasks.spawn(supervised("outbox relay", stop.clone(), {
            let stop = stop.clone();
            async move {
                relay.run(stop).await;
                Ok(())
            }
        }));

        let router = match role {
            Role::All | Role::Api => http::router(state),
            Role::Worker => http::operations_router(state),
        };
        tracing::info!(role = ?role, http.addr = %http.local_addr()?, "orderflow started");
        tasks.spawn(supervised("HTTP server", stop.clone(), {
            let stop = stop.clone();
            async move {
                axum::serve(http, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .context("The HTTP server failed")
            }
        }));

        tasks.close();
        stop.cancelled().await;
        tracing::info!(timeout_secs = config.shutdown_timeout_secs, "shutting down: letting in-flight work finish");
        if tokio::time::timeout(config.shutdown_timeout(), tasks.wait()).await.is_err() {
            tracing::warn!("in-flight work did not finish within the shutdown timeout; it will be redelivered");
        }
        pool.close().await;
        tracing::info!("orderflow stopped");
        Ok(())
    }
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
