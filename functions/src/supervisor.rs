//! Running the process [`crate::app`] built: the functions (with their heartbeats), the job
//! journal's writer, retention, the outbox relay, the board and the HTTP server side by side,
//! each supervised so that one ending stops the others; then one shutdown within one deadline.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use shared::{
    Config,
    journal::{Journal, WorkerHeartbeats},
    messaging::{BrokerHealth, OutboxRelay, RelaySettings},
    metrics::Metrics,
};
use sqlx::PgPool;
use tokio::{net::TcpListener, task::JoinHandle, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    app::{Application, Role},
    board,
    deps::FunctionDeps,
    http,
    registry::{self, Function, WorkerSettings},
    server::{self, HttpLimits},
};

/// The shutdown's time, fixed once from `SHUTDOWN_TIMEOUT_SECS` so that the process exits
/// within it: in-flight jobs drain until shortly before the deadline, and the relay and the
/// journal flush what the last jobs wrote in what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownBudget {
    /// How long in-flight jobs may take once shutdown starts.
    pub drain: Duration,
    /// How long the whole shutdown may take.
    pub total: Duration,
}

impl ShutdownBudget {
    /// The budget of a `timeout`-long shutdown: the jobs get all of it but a moment (a quarter,
    /// a second at most) kept for the relay and the journal.
    pub fn new(timeout: Duration) -> Self {
        ShutdownBudget { drain: timeout - (timeout / 4).min(Duration::from_secs(1)), total: timeout }
    }
}

/// Runs `app` until `shutdown` is cancelled or a part ends, then shuts it down (see
/// [`Application::run`]).
pub(crate) async fn run(app: Application, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Application { config, role, topology, pool, publisher, state, externals, http, board, live_log } = app;
    let budget = ShutdownBudget::new(config.shutdown_timeout());
    let parts = Parts::new(&shutdown, HttpLimits::from_config(&config), state.metrics.clone());
    tokio::spawn(shared::retention::run(
        pool.clone(),
        shared::retention::RetentionSettings::from_config(&config),
        registry::unstarted(&topology, config.max_attempts()),
        parts.stop.clone(),
    ));

    let functions = role.functions();
    let mut pools = vec![pool.clone()];
    let mut journal_writer = None;
    // The journal records what workers report: a process without functions has none to write.
    if !functions.is_empty() {
        // Its own pool: the journal's commits need not wait for the disk (see `db::journal_pool`).
        let journal_pool = shared::db::journal_pool(&config.database_url, config.db_statement_timeout())?;
        let (journal, writer) = Journal::new(journal_pool.clone(), state.metrics.clone());
        journal_writer = Some(tokio::spawn(writer.run(parts.stop_flush.clone())));
        pools.push(journal_pool);
        let deps = FunctionDeps::from_config(
            &config,
            pool.clone(),
            externals,
            state.outbox.clone(),
            parts.stop.clone(),
            budget.drain,
        );
        let settings =
            WorkerSettings::from_config(&config, topology.clone(), budget.drain, journal, state.metrics.clone());
        parts.functions(functions, &deps, settings, &state.broker, &pool)?;
    }

    let relay = OutboxRelay::new(pool.clone(), publisher, state.outbox.clone(), state.metrics.clone(), relay(&config));
    let relay = tokio::spawn(supervised("outbox relay", parts.stop.clone(), {
        let stop_flush = parts.stop_flush.clone();
        async move {
            relay.run(stop_flush).await;
            Ok(())
        }
    }));

    if let Some(board_listener) = board {
        // The live log the process's tracing feeds, or (when none was given) one for the board
        // alone, whose stream then stays empty.
        let router = board::router(
            pool.clone(),
            &state.outbox,
            &topology,
            &config,
            live_log.unwrap_or_default(),
            state.passwords.clone(),
            state.accounts.demo_password_allowed(),
        )?;
        tracing::info!(board.addr = %board_listener.local_addr()?, "job board listening");
        parts.serve("board", board_listener, router, "The board server failed");
    }

    let router = match role {
        Role::All | Role::Api => http::router(state),
        Role::Worker(_) => http::operations_router(state),
    };
    tracing::info!(role = ?role, http.addr = %http.local_addr()?, "orderflow started");
    parts.serve("HTTP server", http, router, "The HTTP server failed");

    parts.shut_down(budget, relay, journal_writer, pools).await;
    Ok(())
}

/// How the relay works, from the configuration.
fn relay(config: &Config) -> RelaySettings {
    RelaySettings {
        batch_size: config.outbox_batch_size,
        poll_interval: config.outbox_poll_interval(),
        max_rejections: i32::from(config.outbox_max_attempts),
    }
}

/// The running parts, in two groups that stop one after the other.
struct Parts {
    /// Cancelled when shutdown starts or any part ends: intake stops.
    stop: CancellationToken,
    /// Intake (the functions, the board, the HTTP server), awaited while it drains.
    intake: TaskTracker,
    /// Cancelled once intake has drained or its time is up: the relay and the journal, which
    /// outlive intake so that the last jobs' events still leave and their last attempts are
    /// still journaled, stop.
    stop_flush: CancellationToken,
    /// The limits both listeners serve within.
    limits: HttpLimits,
    /// Where both listeners count what their limits refused.
    metrics: Arc<Metrics>,
}

impl Parts {
    fn new(shutdown: &CancellationToken, limits: HttpLimits, metrics: Arc<Metrics>) -> Self {
        // Any part ending stops the others: a process that lost its API should not linger.
        Parts {
            stop: shutdown.child_token(),
            intake: TaskTracker::new(),
            stop_flush: CancellationToken::new(),
            limits,
            metrics,
        }
    }

    /// Runs an intake part, supervised.
    fn intake(&self, name: &'static str, part: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.intake.spawn(supervised(name, self.stop.clone(), part));
    }

    /// Serves `router` on `listener`, within the HTTP limits, until intake stops.
    fn serve(&self, name: &'static str, listener: TcpListener, router: Router, failure: &'static str) {
        let (stop, limits, metrics) = (self.stop.clone(), self.limits, self.metrics.clone());
        self.intake(name, async move { server::serve(listener, router, limits, metrics, stop).await.context(failure) });
    }

    /// Runs the functions, and the heartbeats that report their workers.
    fn functions(
        &self,
        functions: &[Function],
        deps: &FunctionDeps,
        settings: WorkerSettings,
        health: &BrokerHealth,
        pool: &PgPool,
    ) -> anyhow::Result<()> {
        let (monitor, live) = registry::monitor(functions, deps, &settings, health)?;
        tokio::spawn(WorkerHeartbeats::new(pool.clone(), settings.process_name, live).run(self.stop.clone()));
        let names: Vec<_> = functions.iter().map(|f| f.name()).collect();
        tracing::info!(
            functions = ?names,
            prefetch = settings.prefetch,
            max_in_flight = settings.budget.limit(),
            "starting functions"
        );
        let stop = self.stop.clone();
        self.intake("functions", async move {
            monitor
                .run_with_signal(async move {
                    stop.cancelled().await;
                    Ok(())
                })
                .await
                .context("The functions' monitor failed")
        });
        Ok(())
    }

    /// Waits for shutdown; then lets intake drain until `budget.drain`, then stops the relay
    /// and the journal writer and lets them finish until `budget.total`, then closes the pools
    /// (the main one and the journal's).
    async fn shut_down(
        self,
        budget: ShutdownBudget,
        relay: JoinHandle<()>,
        journal: Option<JoinHandle<()>>,
        pools: Vec<PgPool>,
    ) {
        self.intake.close();
        self.stop.cancelled().await;
        tracing::info!(timeout_secs = budget.total.as_secs(), "shutting down: letting in-flight work finish");
        let started = Instant::now();
        let (drain_until, deadline) = (started + budget.drain, started + budget.total);
        let drained = tokio::time::timeout_at(drain_until, self.intake.wait()).await.is_ok();
        if !drained {
            tracing::warn!("in-flight work did not finish within the shutdown timeout; it will be redelivered");
        }
        self.stop_flush.cancel();
        let flushed = tokio::time::timeout_at(deadline, async {
            let _ = tokio::join!(relay, async {
                if let Some(journal) = journal {
                    let _ = journal.await;
                }
            });
        });
        if flushed.await.is_err() {
            tracing::warn!("the outbox relay or the job journal did not finish in time; unsent rows go out later");
        }
        for pool in pools {
            pool.close().await;
        }
        tracing::info!("orderflow stopped");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shutdown_keeps_a_moment_for_the_relay_and_the_journal() {
        let budget = ShutdownBudget::new(Duration::from_secs(5));
        assert_eq!((budget.drain, budget.total), (Duration::from_secs(4), Duration::from_secs(5)));
        let short = ShutdownBudget::new(Duration::from_secs(2));
        assert_eq!(short.drain, Duration::from_millis(1500));
    }
}
