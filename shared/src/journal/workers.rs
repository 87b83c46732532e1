//! Worker heartbeats: each process keeps a row per live worker fresh, so the board lists the
//! workers that are actually consuming, per queue.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A worker of this process.
#[derive(Debug, Clone)]
pub struct LiveWorker {
    /// Its unique name (`<function>@<host>-<pid>`).
    pub name: String,
    /// The queue it consumes (or `expire_orders` for the cron).
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
        if let Err(e) = sqlx::query!("delete from workers where process = $1", self.process).execute(&self.pool).await {
            tracing::debug!(error = %e, "could not remove worker heartbeats");
        }
    }

    async fn beat(&self) -> sqlx::Result<()> {
        let live: Vec<&LiveWorker> = self.workers.iter().filter(|w| w.up.load(Ordering::Relaxed)).collect();
        let names: Vec<String> = live.iter().map(|w| w.name.clone()).collect();
        let queues: Vec<String> = live.iter().map(|w| w.queue.clone()).collect();
        let functions: Vec<String> = live.iter().map(|w| w.function.clone()).collect();
        let layers: Vec<String> = live.iter().map(|w| w.layers.clone()).collect();
        sqlx::query!(
            r#"
            insert into workers (name, queue, function, process, layers)
            select name, queue, function, $5, layers
            from unnest($1::text[], $2::text[], $3::text[], $4::text[]) as w(name, queue, function, layers)
            on conflict (name) do update set last_heartbeat = now(), queue = excluded.queue
            "#,
            &names,
            &queues,
            &functions,
            &layers,
            self.process
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
