//! Cron runs: claiming a scheduled tick so that exactly one process runs it, and recording the
//! outcome of every run (and every skip) for the board.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A claimed tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronRun {
    /// The run's row id.
    pub id: i64,
}

/// Claims `job`'s tick scheduled at `scheduled_at` for `worker`. Returns `None` if another
/// process holds it, after recording this claimant's skip. A tick whose earlier run failed can
/// be claimed again (a retry), and so can one this same worker left Running: a run whose
/// failure could not be recorded (the database was down) is retried by its own worker, which
/// must not skip it as if another process held it.
///
/// # Errors
/// Database errors.
pub async fn claim_tick(
    pool: &PgPool,
    job: &str,
    scheduled_at: DateTime<Utc>,
    worker: &str,
) -> sqlx::Result<Option<CronRun>> {
    let claimed = sqlx::query_as!(
        CronRun,
        r#"
        insert into cron_runs (job, scheduled_at, worker)
        values ($1, $2, $3)
        on conflict (job, scheduled_at) where outcome <> 'Skipped'
        do update set worker = excluded.worker, outcome = 'Running', started_at = now(), error = null
            where cron_runs.outcome = 'Failed'
               or (cron_runs.outcome = 'Running' and cron_runs.worker = excluded.worker)
        returning id
        "#,
        job,
        scheduled_at,
        worker
    )
    .fetch_optional(pool)
    .await?;
    if claimed.is_none() {
        sqlx::query!(
            r#"
            insert into cron_runs (job, scheduled_at, worker, outcome, finished_at, affected)
            values ($1, $2, $3, 'Skipped', now(), 0)
            "#,
            job,
            scheduled_at,
            worker
        )
        .execute(pool)
        .await?;
    }
    Ok(claimed)
}

/// Records a skip of `job`'s tick at `scheduled_at` by `worker`, for `reason`.
///
/// # Errors
/// Database errors.
pub async fn record_skip(
    pool: &PgPool,
    job: &str,
    scheduled_at: DateTime<Utc>,
    worker: &str,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"
        insert into cron_runs (job, scheduled_at, worker, outcome, finished_at, affected, error)
        values ($1, $2, $3, 'Skipped', now(), 0, $4)
        "#,
        job,
        scheduled_at,
        worker,
        reason
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a skip of `job`'s tick at `scheduled_at` by `worker` if another worker (another
/// process) is still running an earlier tick of it, and says whether it did. Only a run whose
/// worker's heartbeat is younger than `alive_within` counts: a run left Running by a dead
/// process stops holding the ticks back once its heartbeats have stopped that long. (A
/// process keeps its own runs apart itself, so a run its own worker left Running, whose end
/// could not be recorded, never holds back that worker's ticks.)
///
/// # Errors
/// Database errors.
pub async fn skip_if_earlier_run_elsewhere(
    pool: &PgPool,
    job: &str,
    scheduled_at: DateTime<Utc>,
    worker: &str,
    alive_within: std::time::Duration,
) -> sqlx::Result<bool> {
    let skipped = sqlx::query_scalar!(
        r#"
        insert into cron_runs (job, scheduled_at, worker, outcome, finished_at, affected, error)
        select $1, $2, $3, 'Skipped', now(), 0,
               'the run of the tick ' || to_char(r.scheduled_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
               || ' was still under way on ' || r.worker
        from cron_runs r
        join workers w on w.name = r.worker and w.last_heartbeat > now() - make_interval(secs => $4)
        where r.job = $1 and r.outcome = 'Running' and r.scheduled_at < $2 and r.worker <> $3
        order by r.scheduled_at
        limit 1
        returning id
        "#,
        job,
        scheduled_at,
        worker,
        alive_within.as_secs_f64(),
    )
    .fetch_optional(pool)
    .await?;
    Ok(skipped.is_some())
}

/// Records that a claimed run finished, and how many rows it changed.
///
/// # Errors
/// Database errors.
pub async fn finish_run(pool: &PgPool, run: CronRun, affected: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "update cron_runs set outcome = 'Done', finished_at = now(), affected = $2 where id = $1",
        run.id,
        affected
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that a claimed run failed (the tick may be claimed again by a retry).
///
/// # Errors
/// Database errors.
pub async fn fail_run(pool: &PgPool, run: CronRun, affected: i64, error: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update cron_runs set outcome = 'Failed', finished_at = now(), affected = $2, error = $3 where id = $1",
        run.id,
        affected,
        error
    )
    .execute(pool)
    .await?;
    Ok(())
}
