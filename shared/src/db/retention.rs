//! Retention: deleting what is past it from the tables that grow without end, `job_journal`,
//! `outbox` (sent rows) and `cron_runs`, a batch at a time so no statement holds many locks.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One pruning pass: deletes what finished (or was sent) before `cutoff`, up to 5000 rows per
/// table and statement, until nothing is left; returns how many rows went.
///
/// # Errors
/// Database errors.
pub async fn prune_once(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query!(
            r#"
            with journal as (
                -- Finished jobs queued before the cut-off, found through the enqueue-time index.
                delete from job_journal where message_id in (
                    select message_id from job_journal
                    where enqueued_at < $1 and finished_at < $1
                    order by enqueued_at
                    limit 5000)
                returning 1
            ), outbox as (
                -- Walks the primary key: the oldest rows, the ones to prune, come first.
                delete from outbox where id in (select id from outbox where sent_at < $1 order by id limit 5000)
                returning 1
            ), runs as (
                delete from cron_runs where id in (
                    select id from cron_runs where finished_at < $1 limit 5000)
                returning 1
            )
            select (select count(*) from journal) + (select count(*) from outbox) + (select count(*) from runs)
                as "deleted!"
            "#,
            cutoff
        )
        .fetch_one(pool)
        .await?
        .deleted;
        total += u64::try_from(deleted).unwrap_or_default();
        if deleted == 0 {
            return Ok(total);
        }
    }
}
