//! `FunctionDeps`: what the queue and cron functions need, cloned cheaply into every job.
//! Randomness (the payment outcome) and time are injected, so tests decide them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::anyhow;
use shared::{
    Config,
    clock::{Clock, SystemClock},
    db,
    messaging::OutboxSignal,
    payments::{PaymentGateway, PaymentSimulator},
};
use sqlx::PgPool;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::error::FunctionError;

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

/// Dependencies of every job function.
#[derive(Clone)]
pub struct FunctionDeps {
    /// The database.
    pub pool: PgPool,
    /// Charges orders.
    pub payments: Arc<dyn PaymentGateway>,
    /// Tells the time (expiry cut-offs).
    pub clock: Arc<dyn Clock>,
    /// Wakes the outbox relay after a commit that wrote outbox rows.
    pub outbox: OutboxSignal,
    /// Simulated payment time.
    pub payment_delay: Duration,
    /// A Processing order older than this expires.
    pub order_ttl: Duration,
    /// Most orders one expiry statement moves.
    pub expiry_batch_size: i64,
    /// Cancelled when the process starts shutting down.
    pub shutdown: CancellationToken,
    /// How long in-flight work may still take once shutdown starts.
    pub drain_budget: Duration,
    /// Held while this process runs an expiry tick, so that its runs never overlap.
    pub expiry_run: Arc<tokio::sync::Mutex<()>>,
    db_gate: Arc<DbGate>,
}

/// Admission to the database for jobs.
///
/// - Thousands of jobs may be parked in their payment wait at once; only as many as the pool
///   has connections touch the database at a time, the rest wait here (cheaply, without a
///   timeout) rather than in the pool's acquire queue, where they would time out.
/// - When a query fails because the database is unreachable, the gate closes until a probe
///   gets through: jobs wait for the database instead of burning their retries during an
///   outage and ending in the error queue with nothing wrong with them.
struct DbGate {
    permits: Semaphore,
    healthy: watch::Sender<bool>,
    probing: AtomicBool,
}

impl std::fmt::Debug for FunctionDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionDeps")
            .field("payment_delay", &self.payment_delay)
            .field("order_ttl", &self.order_ttl)
            .finish_non_exhaustive()
    }
}

impl FunctionDeps {
    /// The dependencies `config` describes (`PAYMENT_DELAY_MS`, `ORDER_TTL_SECS`), over `pool`,
    /// admitting as many concurrent database users as `DB_MAX_CONNECTIONS`, with `externals`'
    /// payments and clock. Jobs wake the relay through `outbox`, learn of shutdown from
    /// `shutdown`, and may still take `drain_budget` once it starts.
    pub fn from_config(
        config: &Config,
        pool: PgPool,
        externals: Externals,
        outbox: OutboxSignal,
        shutdown: CancellationToken,
        drain_budget: Duration,
    ) -> Self {
        FunctionDeps {
            pool,
            payments: externals.payments,
            clock: externals.clock,
            outbox,
            payment_delay: config.payment_delay(),
            order_ttl: Duration::from_secs(config.order_ttl_secs),
            expiry_batch_size: 5_000,
            shutdown,
            drain_budget,
            expiry_run: Arc::default(),
            db_gate: Arc::new(DbGate {
                permits: Semaphore::new(db::main_pool_size(config.db_max_connections, true) as usize),
                healthy: watch::Sender::new(true),
                probing: AtomicBool::new(false),
            }),
        }
    }

    /// Runs `query` on the pool when the database is up and a connection is free. A failure
    /// that means the database is unreachable closes the gate until it is back.
    ///
    /// # Errors
    /// The query's error (transient or not), or a transient error when shutdown starts while
    /// waiting (the message is then requeued).
    pub async fn db<T>(&self, query: impl AsyncFnOnce(&PgPool) -> sqlx::Result<T>) -> Result<T, FunctionError> {
        let mut healthy = self.db_gate.healthy.subscribe();
        if !*healthy.borrow_and_update() {
            tokio::select! {
                biased;
                ready = healthy.wait_for(|up| *up) => { ready.map_err(|e| anyhow!(e))?; }
                () = self.shutdown.cancelled() => {
                    return Err(FunctionError::Interrupted("shutting down while the database is unreachable"));
                }
            }
        }
        let result = {
            let _turn = self.db_gate.permits.acquire().await.map_err(|e| anyhow!(e))?;
            // The job is at work from here: its journal row says Running from now (this runs in
            // the job's own task, where the journal layer keeps its unreported start).
            shared::journal::admitted();
            // On the heap while it runs: a job's future is as large as the largest state it can
            // be in, so an inline query would make every job parked in its payment wait carry
            // room for a query's state all the while (issue 15, "Memory of parked jobs").
            Box::pin(query(&self.pool)).await
        };
        match result {
            Err(e) if db::is_transient(&e) => {
                self.database_unreachable(&e);
                Err(e.into())
            }
            other => Ok(other?),
        }
    }

    /// Closes the gate and probes the database, with backoff, until it answers.
    fn database_unreachable(&self, error: &sqlx::Error) {
        if self.db_gate.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!(error = %error, "database unreachable; jobs wait for it");
        self.db_gate.healthy.send_replace(false);
        let (gate, pool) = (self.db_gate.clone(), self.pool.clone());
        tokio::spawn(async move {
            let mut backoff = shared::messaging::reconnect_backoff();
            loop {
                tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(5))).await;
                if db::ping(&pool).await.is_ok() {
                    break;
                }
            }
            tracing::info!("database reachable again; jobs resume");
            gate.probing.store(false, Ordering::SeqCst);
            gate.healthy.send_replace(true);
        });
    }
}
