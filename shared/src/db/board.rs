//! What the job board reads (DESIGN.md section 7): journal rows as its task list and task page,
//! counts per status for its statistics, the queues and their daily activity, the live workers,
//! and a cron job's last finished run. Its one write, a push from the board, is [`super::outbox::insert_board_push`].
//!
//! The journal holds what workers reported. A job no worker has started yet is a published
//! outbox row without a journal row (the view `unstarted_jobs`): the jobs, the counts and the
//! activity below add those as Pending, named by [`Unstarted`].

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// How the board names the jobs of published events no worker has started yet: each event
/// type's queue and function, and the attempts a job may take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unstarted {
    /// The event types (`OrderCreated` …), one per queue.
    pub event_types: Vec<String>,
    /// The queue each event type travels on.
    pub queues: Vec<String>,
    /// The function each event type triggers.
    pub functions: Vec<String>,
    /// Attempts a job may take.
    pub max_attempts: i32,
}

impl Unstarted {
    /// Only the event types that travel on `queue` (all of them for `None`).
    #[must_use]
    pub fn on(&self, queue: Option<&str>) -> Unstarted {
        let mut on = Unstarted { max_attempts: self.max_attempts, ..Unstarted::default() };
        for ((event_type, q), function) in self.event_types.iter().zip(&self.queues).zip(&self.functions) {
            if queue.is_none_or(|queue| queue == q) {
                on.event_types.push(event_type.clone());
                on.queues.push(q.clone());
                on.functions.push(function.clone());
            }
        }
        on
    }
}

/// A journal row as the board shows it.
#[derive(Debug)]
pub struct JobRow {
    /// The message (or cron run) id.
    pub message_id: String,
    /// The queue (or, for a cron run, the name its runs are journaled under).
    pub queue: String,
    /// The function.
    pub function: String,
    /// The arguments.
    pub args: Value,
    /// The status (`Pending`, `Running`, `Done`, `Failed`, `Killed`).
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Attempts the job may take.
    pub max_attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// What a successful attempt did.
    pub result: Option<String>,
    /// When the message was published.
    pub enqueued_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the latest attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker of the latest attempt.
    pub worker: Option<String>,
    /// The order concerned, if any.
    pub order_id: Option<i64>,
    /// The request that started the chain.
    pub correlation_id: Option<String>,
    /// The W3C trace id the job ran in.
    pub trace_id: Option<String>,
}

/// One page of jobs, newest first, of one queue and one status, or of all: the journal's rows
/// and the published jobs no worker has started (Pending), of the event types in `unstarted`.
///
/// # Errors
/// Database errors.
pub async fn jobs(
    pool: &PgPool,
    queue: Option<&str>,
    status: Option<&str>,
    unstarted: &Unstarted,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"
            select message_id as "message_id!", queue as "queue!", function as "function!", args as "args!",
                   status as "status!", attempts as "attempts!", max_attempts as "max_attempts!", last_error,
                   result, enqueued_at as "enqueued_at!", started_at, finished_at, worker, order_id,
                   correlation_id, trace_id
            from (
                select message_id, queue, function, args, status, attempts, max_attempts, last_error, result,
                       enqueued_at, started_at, finished_at, worker, order_id, correlation_id, trace_id
                from job_journal
                where ($1::text is null or queue = $1) and ($2::text is null or status = $2)
                union all
                select u.message_id::text, m.queue, m.function, u.args, 'Pending', 0, $5, null, null,
                       u.enqueued_at, null, null, null, u.order_id, u.correlation_id, u.trace_id
                from unstarted_jobs u
                join unnest($6::text[], $7::text[], $8::text[]) as m(event_type, queue, function)
                     on m.event_type = u.event_type
                where $2::text is null or $2 = 'Pending'
            ) jobs
            order by enqueued_at desc, message_id
            limit $3 offset $4
            "#,
        queue,
        status,
        limit,
        offset,
        unstarted.max_attempts,
        &unstarted.event_types,
        &unstarted.queues,
        &unstarted.functions,
    )
    .fetch_all(pool)
    .await
}

/// One job of `queue`: its journal row, or, while no worker has started it, the published
/// event's (of the event types in `unstarted`).
///
/// # Errors
/// Database errors.
pub async fn job(pool: &PgPool, message_id: &str, queue: &str, unstarted: &Unstarted) -> sqlx::Result<Option<JobRow>> {
    // Outbox rows are keyed by UUID, written as the journal writes it: any other id names no
    // unstarted job (and another spelling of the same UUID names none either).
    let outbox_id = Uuid::parse_str(message_id).ok().filter(|id| id.hyphenated().to_string() == message_id);
    sqlx::query_as!(
        JobRow,
        r#"
            select message_id as "message_id!", queue as "queue!", function as "function!", args as "args!",
                   status as "status!", attempts as "attempts!", max_attempts as "max_attempts!", last_error,
                   result, enqueued_at as "enqueued_at!", started_at, finished_at, worker, order_id,
                   correlation_id, trace_id
            from (
                select message_id, queue, function, args, status, attempts, max_attempts, last_error, result,
                       enqueued_at, started_at, finished_at, worker, order_id, correlation_id, trace_id
                from job_journal
                where message_id = $1 and queue = $2
                union all
                select u.message_id::text, m.queue, m.function, u.args, 'Pending', 0, $4, null, null,
                       u.enqueued_at, null, null, null, u.order_id, u.correlation_id, u.trace_id
                from unstarted_jobs u
                join unnest($5::text[], $6::text[], $7::text[]) as m(event_type, queue, function)
                     on m.event_type = u.event_type
                where u.message_id = $3 and m.queue = $2
            ) job
            "#,
        message_id,
        queue,
        outbox_id,
        unstarted.max_attempts,
        &unstarted.event_types,
        &unstarted.queues,
        &unstarted.functions,
    )
    .fetch_optional(pool)
    .await
}

/// How many jobs there are in each status, and when the latest and the oldest pending were
/// published (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCounts {
    /// Every job.
    pub total: i64,
    /// Queued, not started.
    pub pending: i64,
    /// Under way.
    pub running: i64,
    /// Succeeded.
    pub done: i64,
    /// Failed, a retry follows.
    pub failed: i64,
    /// Dead-lettered.
    pub killed: i64,
    /// When the latest job was published.
    pub most_recent: Option<i64>,
    /// When the oldest pending job was published.
    pub oldest_pending: Option<i64>,
}

/// The counts of one queue, or of all, the published jobs no worker has started (of the event
/// types in `unstarted`) among the pending.
///
/// # Errors
/// Database errors.
pub async fn job_counts(pool: &PgPool, queue: Option<&str>, unstarted: &Unstarted) -> sqlx::Result<JobCounts> {
    sqlx::query_as!(
        JobCounts,
        r#"
            with jobs as (
                select status, enqueued_at from job_journal where ($1::text is null or queue = $1)
                union all
                select 'Pending', enqueued_at from unstarted_jobs where event_type = any($2)
            )
            select count(*) as "total!",
                   count(*) filter (where status = 'Pending') as "pending!",
                   count(*) filter (where status = 'Running') as "running!",
                   count(*) filter (where status = 'Done') as "done!",
                   count(*) filter (where status = 'Failed') as "failed!",
                   count(*) filter (where status = 'Killed') as "killed!",
                   extract(epoch from max(enqueued_at))::bigint as most_recent,
                   extract(epoch from min(enqueued_at) filter (where status = 'Pending'))::bigint as oldest_pending
            from jobs
            "#,
        queue,
        &unstarted.event_types,
    )
    .fetch_one(pool)
    .await
}

/// The queues that have jobs in the journal.
///
/// # Errors
/// Database errors.
pub async fn journaled_queues(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!("select distinct queue from job_journal").fetch_all(pool).await
}

/// Jobs published to `queue` on each of the last seven days, oldest day first, those no worker
/// has started yet (of the event types in `unstarted`) included.
///
/// # Errors
/// Database errors.
pub async fn daily_jobs(pool: &PgPool, queue: &str, unstarted: &Unstarted) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"
                with jobs as (
                    select enqueued_at from job_journal where queue = $1
                    union all
                    select enqueued_at from unstarted_jobs where event_type = any($2)
                )
                select count(j.enqueued_at) as "jobs!"
                from generate_series(current_date - 6, current_date, interval '1 day') as d(day)
                left join jobs j on j.enqueued_at::date = d.day::date
                group by d.day
                order by d.day
                "#,
        queue,
        &unstarted.event_types,
    )
    .fetch_all(pool)
    .await
}

/// A cron job's run as the board shows it: how it ended and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedCronRun {
    /// `Done`, `Failed`, or `Killed` (its process died mid-run: an orphan the retention sweep marked).
    pub outcome: String,
    /// The tick it ran for.
    pub scheduled_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How many rows it changed (for the expiry, orders expired), up to a failure.
    pub affected: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The latest run of `job` that finished, Done, Failed or Killed (orphaned): a tick under way has no outcome yet,
/// and a skip (another process had the tick) did nothing.
///
/// # Errors
/// Database errors.
pub async fn last_finished_cron_run(pool: &PgPool, job: &str) -> sqlx::Result<Option<FinishedCronRun>> {
    sqlx::query_as!(
        FinishedCronRun,
        r#"
            select outcome, scheduled_at, finished_at, affected, error
            from cron_runs
            where job = $1 and outcome in ('Done', 'Failed', 'Killed')
            order by scheduled_at desc, started_at desc
            limit 1
            "#,
        job
    )
    .fetch_optional(pool)
    .await
}

/// A worker as the board lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRow {
    /// Its unique name.
    pub name: String,
    /// The queue it consumes.
    pub queue: String,
    /// When its process registered it.
    pub started_at: DateTime<Utc>,
    /// Its latest heartbeat.
    pub last_heartbeat: DateTime<Utc>,
    /// Its middleware.
    pub layers: String,
}

/// The workers of one queue, or of all, that sent a heartbeat within `silent_for`.
///
/// # Errors
/// Database errors.
pub async fn live_workers(
    pool: &PgPool,
    queue: Option<&str>,
    silent_for: chrono::Duration,
) -> sqlx::Result<Vec<WorkerRow>> {
    sqlx::query_as!(
        WorkerRow,
        r#"
            select name, queue, started_at, last_heartbeat, layers
            from workers
            where ($1::text is null or queue = $1) and last_heartbeat > now() - $2::interval
            order by queue, name
            "#,
        queue,
        silent_for as _
    )
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::Unstarted;

    #[test]
    fn the_unstarted_jobs_of_a_queue_are_those_of_its_event_types_only() {
        let strings = |all: &[&str]| all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let all = Unstarted {
            event_types: strings(&["OrderCreated", "OrderCompleted"]),
            queues: strings(&["created", "completed"]),
            functions: strings(&["on_order_created", "on_order_completed"]),
            max_attempts: 4,
        };

        let completed = Unstarted {
            event_types: strings(&["OrderCompleted"]),
            queues: strings(&["completed"]),
            functions: strings(&["on_order_completed"]),
            max_attempts: 4,
        };
        assert_eq!(all.on(Some("completed")), completed);
        assert_eq!(all.on(None), all);
        assert_eq!(all.on(Some("expire_orders")), Unstarted { max_attempts: 4, ..Unstarted::default() });
    }
}
