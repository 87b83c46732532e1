//! The retention loop: every so often, deletes finished journal entries, sent outbox rows and
//! cron runs older than `JOURNAL_RETENTION_HOURS` (the statement is [`crate::db::retention`]).

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::retention::prune_once;

/// Deletes finished journal entries, sent outbox rows and cron runs older than `retention`, a
/// batch at a time, until `stop`. Runs every `every`.
pub async fn prune(pool: PgPool, retention: Duration, every: Duration, stop: CancellationToken) {
    let Ok(retention) = chrono::Duration::from_std(retention) else { return };
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
        let cutoff = Utc::now() - retention;
        match prune_once(&pool, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned journal, outbox and cron entries older than the retention"),
            Err(e) => tracing::warn!(error = %e, "could not prune the journal"),
        }
    }
}
