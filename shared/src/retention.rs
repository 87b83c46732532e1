//! The retention sweep: every `RETENTION_INTERVAL_SECS`, in one process at a time across
//! replicas (a PostgreSQL advisory lock; the others skip that round), it
//! - marks orphans Killed: jobs and cron runs left Running by a worker whose heartbeat stopped
//!   for `ORPHAN_TIMEOUT_SECS` (as Oban's Lifeline and Sidekiq's orphan recovery do), and jobs
//!   still Pending (or published and never started) after `JOURNAL_RETENTION_HOURS`;
//! - removes the `workers` rows of processes silent for `DEAD_WORKER_RETENTION_SECS`;
//! - deletes finished journal entries, sent outbox rows and finished cron runs older than
//!   `JOURNAL_RETENTION_HOURS`, and idempotency keys older than `IDEMPOTENCY_TTL_HOURS`.
//!
//! It runs on a connection of its own, outside the pool, whose `statement_timeout` is
//! [`crate::db::MAINTENANCE_STATEMENT_TIMEOUT`] rather than the API's `DB_STATEMENT_TIMEOUT_MS`
//! (every statement is a bounded batch; the SQL is [`crate::db::retention`]).

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::db::{self, board::Unstarted, retention};

/// What the sweep keeps, marks and deletes, and how often it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Finished journal entries, sent outbox rows and finished cron runs are kept this long.
    pub journal: Duration,
    /// Idempotency keys replay, and are kept, this long.
    pub idempotency_keys: Duration,
    /// A worker silent this long is dead: its Running jobs and cron runs are marked Killed.
    pub orphan_after: Duration,
    /// A worker silent this long loses its `workers` row.
    pub dead_workers: Duration,
    /// Time between two sweeps.
    pub every: Duration,
}

impl RetentionSettings {
    /// The settings of `config`.
    pub fn from_config(config: &crate::Config) -> Self {
        RetentionSettings {
            journal: Duration::from_secs(config.journal_retention_hours * 3600),
            idempotency_keys: config.idempotency_ttl(),
            orphan_after: Duration::from_secs(config.orphan_timeout_secs),
            dead_workers: Duration::from_secs(config.dead_worker_retention_secs),
            every: Duration::from_secs(config.retention_interval_secs),
        }
    }
}

/// Sweeps every `settings.every` until `stop`; `unstarted` names the jobs of published events
/// (see [`sweep`]).
pub async fn run(pool: PgPool, settings: RetentionSettings, unstarted: Unstarted, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(settings.every) => {}
            () = stop.cancelled() => return,
        }
        tokio::select! {
            result = sweep(&pool, settings, &unstarted) => {
                if let Err(e) = result {
                    tracing::warn!(error = %format!("{e:#}"), "the retention sweep failed; it runs again later");
                }
            }
            // Dropping the sweep closes its connection, which ends its statement and its lock.
            () = stop.cancelled() => return,
        }
    }
}

/// One sweep, unless another process is sweeping right now. A published event that no worker
/// started within the retention is journaled as a Killed job of the function `unstarted` names.
///
/// # Errors
/// Database errors.
pub async fn sweep(pool: &PgPool, settings: RetentionSettings, unstarted: &Unstarted) -> anyhow::Result<()> {
    let options = pool.connect_options();
    let mut conn = options.connect().await.context("Failed to connect for the retention sweep")?;
    retention::set_statement_timeout(&mut conn, db::MAINTENANCE_STATEMENT_TIMEOUT).await?;
    if !retention::try_lock(&mut conn).await? {
        tracing::debug!("another process is running the retention sweep; skipped");
        return Ok(());
    }
    let now = Utc::now();
    let journal_cutoff = now - chrono::Duration::from_std(settings.journal).context("JOURNAL_RETENTION_HOURS")?;
    let keys_cutoff = now - chrono::Duration::from_std(settings.idempotency_keys).context("IDEMPOTENCY_TTL_HOURS")?;

    // Every unstarted job past the retention is marked before its outbox row is pruned below.
    let mut orphans = retention::Orphans::default();
    loop {
        let marked = retention::mark_orphans(&mut conn, settings.orphan_after, journal_cutoff, unstarted).await?;
        orphans.jobs += marked.jobs;
        orphans.cron_runs += marked.cron_runs;
        if marked.jobs == 0 {
            break;
        }
    }
    if orphans != retention::Orphans::default() {
        tracing::warn!(
            jobs = orphans.jobs,
            cron_runs = orphans.cron_runs,
            "marked orphaned jobs and cron runs Killed: their worker stopped sending heartbeats, or their message waited past the retention"
        );
    }
    let workers = retention::remove_dead_workers(&mut conn, settings.dead_workers).await?;
    if workers > 0 {
        tracing::info!(workers, "removed the rows of workers that stopped sending heartbeats");
    }
    let pruned = retention::prune_once(&mut conn, journal_cutoff, keys_cutoff).await?;
    if pruned > 0 {
        tracing::info!(rows = pruned, "pruned journal, outbox, cron and idempotency rows past their retention");
    }
    // Closing the session releases the lock.
    let _ = conn.close().await;
    Ok(())
}
