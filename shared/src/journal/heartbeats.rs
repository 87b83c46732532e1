//! Worker heartbeats: each process keeps a row per live worker fresh, so the board lists the
//! workers that are actually consuming, per queue (the SQL is [`crate::db::workers`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::workers::{self, Heartbeat};

/// A worker of this process.
#[derive(Debug, Clone)]
pub struct LiveWorker {
    /// Its unique name (`<function>@<host>-<pid>`).
    pub name: String,
    /// The queue it consumes (or, for a cron worker, the name its runs are journaled under).
    pub queue: String,
    /// The function it runs.
    pub function: String,
    /// Its middleware, as the board shows it.
    pub layers: String,
    /// Whether it is consuming right now (its broker connection is up).
    pub up: Arc<AtomicBool>,
}

/// Writes heartbeats for this process's workers.
#[derive(Debug, Clone)]
pub struct WorkerHeartbeats {
    pool: PgPool,
    process: String,
    workers: Vec<LiveWorker>,
}

/// How often a heartbeat is written; the board treats a worker silent for three of these as gone.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

impl WorkerHeartbeats {
    /// Heartbeats for `workers` of `process`.
    pub fn new(pool: PgPool, process: impl Into<String>, workers: Vec<LiveWorker>) -> Self {
        WorkerHeartbeats { pool, process: process.into(), workers }
    }

    /// Beats every [`HEARTBEAT_INTERVAL`] until `stop`, then removes this process's rows.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.beat().await {
                tracing::debug!(error = %e, "could not write worker heartbeats");
            }
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
                () = stop.cancelled() => break,
            }
        }
        if let Err(e) = workers::remove_process(&self.pool, &self.process).await {
            tracing::debug!(error = %e, "could not remove worker heartbeats");
        }
    }

    async fn beat(&self) -> sqlx::Result<()> {
        let live: Vec<Heartbeat<'_>> = self
            .workers
            .iter()
            .filter(|w| w.up.load(Ordering::Relaxed))
            .map(|w| Heartbeat { name: &w.name, queue: &w.queue, function: &w.function, layers: &w.layers })
            .collect();
        workers::beat(&self.pool, &self.process, &live).await
    }
}
