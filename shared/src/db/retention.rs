//! Retention: deleting what is past it from the tables that grow without end (`job_journal`,
//! sent `outbox` rows, `cron_runs`, `idempotency_keys`, silent `workers`), a batch at a time so
//! no statement holds many locks; and marking orphans, the jobs and cron runs whose worker
//! died mid-way, which would otherwise stay Running (never finished, so never pruned) forever.
//!
//! Every statement takes the one connection the sweep holds ([`crate::retention`]), on which
//! [`try_lock`] makes the sweep run in one process at a time across replicas.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::board::Unstarted;

/// The advisory lock the sweep holds while it runs (`orderflow.retention`, as a number).
const SWEEP_LOCK: i64 = 0x6f72_6465_7266_6c6f;

/// Takes the sweep's lock on this session, unless another process holds it. Closing the
/// connection releases it.
///
/// # Errors
/// Database errors.
pub async fn try_lock(conn: &mut PgConnection) -> sqlx::Result<bool> {
    let locked = sqlx::query_scalar!(r#"select pg_try_advisory_lock($1) as "locked!""#, SWEEP_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    Ok(locked)
}

/// Sets this session's `statement_timeout` (0: none), replacing the pool's API bound.
///
/// # Errors
/// Database errors.
pub async fn set_statement_timeout(conn: &mut PgConnection, timeout: Duration) -> sqlx::Result<()> {
    let millis = timeout.as_millis().to_string();
    sqlx::query_scalar!(r#"select set_config('statement_timeout', $1, false) as "set!""#, millis)
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

/// What one orphan pass marked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Orphans {
    /// Journal rows marked Killed.
    pub jobs: i64,
    /// Cron runs marked Killed.
    pub cron_runs: i64,
}

/// Marks Killed, with the reason in their error, up to 5000 journal rows, up to 5000 unstarted
/// jobs and every cron run (call it again until it marks no job):
/// - a job or cron run Running for more than `orphan_after` on a worker that has not sent a
///   heartbeat for `orphan_after` (its process died, or it lost its broker that long): its
///   outcome was never recorded. A live worker beats every few seconds, so its long jobs are
///   never marked; and a later report about the job (a redelivery's attempt, or the original
///   worker's own late `Done`) overwrites the mark, since the journal keeps the latest report;
/// - a job still Pending (requeued at a shutdown, or pushed from the board) since before
///   `pending_cutoff`, and a published event no worker has reported on (the view
///   `unstarted_jobs`, named by `unstarted`) sent before it: its message was lost, or has
///   waited in its queue longer than the journal's retention. The latter get a journal row,
///   so that the mark outlives the outbox row, which the same sweep then deletes.
///
/// Heartbeats and start times are compared with the database's clock, which wrote them.
///
/// # Errors
/// Database errors.
pub async fn mark_orphans(
    conn: &mut PgConnection,
    orphan_after: Duration,
    pending_cutoff: DateTime<Utc>,
    unstarted: &Unstarted,
) -> sqlx::Result<Orphans> {
    let row = sqlx::query!(
        r#"
        with silent as (
            select now() - make_interval(secs => $1) as since
        ), jobs as (
            update job_journal j set
                status = 'Killed',
                finished_at = now(),
                last_error = case when j.status = 'Running'
                    then 'orphaned: worker ' || coalesce(j.worker, 'unknown')
                         || ' stopped sending heartbeats while running this job; its outcome was not recorded'
                    else 'orphaned: still Pending after the journal''s retention; the message was never consumed'
                end
            from silent
            where j.message_id in (
                    select o.message_id from job_journal o, silent s
                    where (o.status = 'Running' and o.started_at < s.since
                           and not exists (select 1 from workers w
                                           where w.name = o.worker and w.last_heartbeat >= s.since))
                       or (o.status = 'Pending' and coalesce(o.started_at, o.enqueued_at) < $2)
                    limit 5000)
              -- Re-checked on the locked row: a report written meanwhile wins.
              and j.status in ('Running', 'Pending')
            returning 1
        ), never_started as (
            insert into job_journal (message_id, queue, function, args, status, max_attempts, enqueued_at,
                                     finished_at, order_id, correlation_id, trace_id, last_error)
            select u.message_id::text, m.queue, m.function, u.args, 'Killed', $6, u.enqueued_at, now(), u.order_id,
                   u.correlation_id, u.trace_id,
                   'orphaned: still Pending after the journal''s retention; the message was never consumed'
            from unstarted_jobs u
            join unnest($3::text[], $4::text[], $5::text[]) as m(event_type, queue, function)
                 on m.event_type = u.event_type
            where u.sent_at < $2
            -- The journal's lock order (db::journal).
            order by u.message_id::text
            limit 5000
            -- A worker's report written meanwhile wins.
            on conflict (message_id) do nothing
            returning 1
        ), runs as (
            update cron_runs r set
                outcome = 'Killed',
                finished_at = now(),
                error = 'orphaned: worker ' || r.worker
                        || ' stopped sending heartbeats during this run; what it did was not recorded'
            from silent
            where r.outcome = 'Running' and r.started_at < silent.since
              and not exists (select 1 from workers w where w.name = r.worker and w.last_heartbeat >= silent.since)
            returning 1
        )
        select (select count(*) from jobs) + (select count(*) from never_started) as "jobs!",
               (select count(*) from runs) as "runs!"
        "#,
        orphan_after.as_secs_f64(),
        pending_cutoff,
        &unstarted.event_types,
        &unstarted.queues,
        &unstarted.functions,
        unstarted.max_attempts,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Orphans { jobs: row.jobs, cron_runs: row.runs })
}

/// Removes the `workers` rows not refreshed for `after` (their process died without removing
/// them; a live worker's next heartbeat would insert its row again). Returns how many went.
///
/// # Errors
/// Database errors.
pub async fn remove_dead_workers(conn: &mut PgConnection, after: Duration) -> sqlx::Result<u64> {
    let removed = sqlx::query!(
        "delete from workers where last_heartbeat < now() - make_interval(secs => $1)",
        after.as_secs_f64()
    )
    .execute(&mut *conn)
    .await?;
    Ok(removed.rows_affected())
}

/// One pruning pass: deletes what finished (or was sent) before `cutoff`, and idempotency keys
/// created before `keys_cutoff`, up to 5000 rows per table and statement, until nothing is
/// left; returns how many rows went.
///
/// # Errors
/// Database errors.
pub async fn prune_once(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    keys_cutoff: DateTime<Utc>,
) -> sqlx::Result<u64> {
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
            ), keys as (
                -- Expired: they no longer replay (db::orders::find_idempotent_replay), so they can go.
                delete from idempotency_keys where (user_id, key) in (
                    select user_id, key from idempotency_keys where created_at < $2 order by created_at limit 5000)
                returning 1
            )
            select (select count(*) from journal) + (select count(*) from outbox) + (select count(*) from runs)
                   + (select count(*) from keys)
                as "deleted!"
            "#,
            cutoff,
            keys_cutoff
        )
        .fetch_one(&mut *conn)
        .await?
        .deleted;
        total += u64::try_from(deleted).unwrap_or_default();
        if deleted == 0 {
            return Ok(total);
        }
    }
}
