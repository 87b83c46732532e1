//! `FunctionDeps`: what the queue and cron functions need, cloned cheaply into every job.
//! Randomness (the payment outcome) and time are injected, so tests decide them.

use std::{sync::Arc, time::Duration};

use shared::{clock::Clock, messaging::OutboxSignal, payments::PaymentGateway};
use sqlx::PgPool;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

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
    // Thousands of jobs may be parked in their payment wait at once; this gate lets only as
    // many touch the database as the pool has connections, so the rest wait here (cheaply, with
    // no timeout) rather than in the pool's acquire queue, where they would time out.
    db_gate: Arc<Semaphore>,
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
    /// Dependencies over `pool`, admitting as many concurrent database users as it has
    /// connections.
    #[expect(clippy::too_many_arguments, reason = "a constructor of plain fields")]
    pub fn new(
        pool: PgPool,
        max_connections: u32,
        payments: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
        outbox: OutboxSignal,
        payment_delay: Duration,
        order_ttl: Duration,
        shutdown: CancellationToken,
        drain_budget: Duration,
    ) -> Self {
        FunctionDeps {
            pool,
            payments,
            clock,
            outbox,
            payment_delay,
            order_ttl,
            expiry_batch_size: 5_000,
            shutdown,
            drain_budget,
            db_gate: Arc::new(Semaphore::new(max_connections.max(1) as usize)),
        }
    }

    /// Waits for a turn at the database; hold the permit while using the pool.
    ///
    /// # Panics
    /// Never: the gate is never closed.
    pub async fn db_turn(&self) -> SemaphorePermit<'_> {
        self.db_gate.acquire().await.expect("the database gate is never closed")
    }
}
