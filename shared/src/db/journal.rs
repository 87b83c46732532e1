//! The job journal's table, `job_journal` (DESIGN.md section 7): the writer's bulk statement
//! and the dead-letter list's summaries. The board's reads are in [`super::board`],
//! the order timeline in [`super::timeline`], pruning in [`super::retention`].
//!
//! Each batch is written with one statement over `unnest`ed column arrays, rows in
//! `message_id` order: every writer (one per process) locks rows in that one order, so
//! concurrent batches wait for each other but never deadlock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// What one batch writes to one message's journal row: the net effect of the reports since its
/// last write. Borrowed from the writer's buffer; the text is made storable here.
#[derive(Debug, Clone, Copy)]
pub struct JournalWrite<'a> {
    /// The message (or cron run) id, the row's key.
    pub message_id: &'a str,
    /// The queue; empty when the batch only saw the job finish (see [`upsert`]).
    pub queue: &'a str,
    /// The function.
    pub function: &'a str,
    /// The arguments as JSON text, if reported.
    pub args: Option<&'a str>,
    /// The status as stored (`Pending`, `Running`, `Done`, `Failed`, `Killed`).
    pub status: &'static str,
    /// Attempts started in this batch, added to those already stored.
    pub attempts: i32,
    /// Attempts the job may take.
    pub max_attempts: i32,
    /// The last error, if the batch saw one.
    pub last_error: Option<&'a str>,
    /// What a successful attempt did.
    pub result: Option<&'a str>,
    /// When the message was published, if reported.
    pub enqueued_at: Option<DateTime<Utc>>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the latest attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker of the latest attempt.
    pub worker: Option<&'a str>,
    /// The order concerned, if any.
    pub order_id: Option<i64>,
    /// The request that started the chain.
    pub correlation_id: Option<&'a str>,
    /// The W3C trace id of the job's latest traced attempt.
    pub trace_id: Option<&'a str>,
}

/// A batch as `unnest` takes it: one array per column, in `message_id` (lock) order, the text
/// cleaned of what PostgreSQL refuses.
#[derive(Debug, Default)]
struct Columns {
    message_ids: Vec<String>,
    queues: Vec<String>,
    functions: Vec<String>,
    args: Vec<Option<String>>,
    statuses: Vec<String>,
    attempts: Vec<i32>,
    max_attempts: Vec<i32>,
    last_errors: Vec<Option<String>>,
    results: Vec<Option<String>>,
    enqueued_at: Vec<Option<DateTime<Utc>>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    workers: Vec<Option<String>>,
    order_ids: Vec<Option<i64>>,
    correlation_ids: Vec<Option<String>>,
    trace_ids: Vec<Option<String>>,
}

impl Columns {
    fn of(rows: &[JournalWrite<'_>]) -> Columns {
        let mut sorted: Vec<&JournalWrite<'_>> = rows.iter().collect();
        sorted.sort_by_key(|row| row.message_id);
        let mut columns = Columns::default();
        for row in sorted {
            columns.message_ids.push(row.message_id.to_owned());
            columns.queues.push(row.queue.to_owned());
            columns.functions.push(row.function.to_owned());
            columns.args.push(row.args.map(sanitize_json));
            columns.statuses.push(row.status.to_owned());
            columns.attempts.push(row.attempts);
            columns.max_attempts.push(row.max_attempts);
            columns.last_errors.push(row.last_error.map(without_nul));
            columns.results.push(row.result.map(without_nul));
            columns.enqueued_at.push(row.enqueued_at);
            columns.started_at.push(row.started_at);
            columns.finished_at.push(row.finished_at);
            columns.workers.push(row.worker.map(str::to_owned));
            columns.order_ids.push(row.order_id);
            columns.correlation_ids.push(row.correlation_id.map(str::to_owned));
            columns.trace_ids.push(row.trace_id.map(str::to_owned));
        }
        columns
    }
}

/// What workers reported: insert or update. A row with an empty queue (a `Finished` whose
/// `Started` went in an earlier batch) only updates.
///
/// # Errors
/// Database errors.
pub async fn upsert(conn: &mut PgConnection, rows: &[JournalWrite<'_>]) -> sqlx::Result<()> {
    let c = Columns::of(rows);
    sqlx::query!(
        r#"
        insert into job_journal as j
            (message_id, queue, function, args, status, attempts, max_attempts, last_error, result,
             enqueued_at, started_at, finished_at, worker, order_id, correlation_id, trace_id)
        select u.message_id, u.queue, u.function, coalesce(u.args::jsonb, '{}'::jsonb), u.status, u.attempts,
               u.max_attempts, u.last_error, u.result, coalesce(u.enqueued_at, now()), u.started_at,
               u.finished_at, u.worker, u.order_id, u.correlation_id, u.trace_id
        from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::text[],
                    $9::text[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::text[],
                    $14::bigint[], $15::text[], $16::text[])
             with ordinality as u(message_id, queue, function, args, status, attempts, max_attempts, last_error,
                                  result, enqueued_at, started_at, finished_at, worker, order_id, correlation_id,
                                  trace_id, position)
        where u.queue <> '' or exists (select 1 from job_journal e where e.message_id = u.message_id)
        order by u.position
        on conflict (message_id) do update set
            status = excluded.status,
            attempts = j.attempts + excluded.attempts,
            max_attempts = greatest(j.max_attempts, excluded.max_attempts),
            last_error = coalesce(excluded.last_error, j.last_error),
            result = coalesce(excluded.result, j.result),
            started_at = coalesce(excluded.started_at, j.started_at),
            finished_at = case when excluded.status in ('Running', 'Pending') then null
                               else coalesce(excluded.finished_at, j.finished_at) end,
            worker = coalesce(excluded.worker, j.worker),
            order_id = coalesce(j.order_id, excluded.order_id),
            correlation_id = coalesce(j.correlation_id, excluded.correlation_id),
            trace_id = coalesce(excluded.trace_id, j.trace_id),
            args = case when j.args = '{}'::jsonb then excluded.args else j.args end,
            -- enqueued_at stays as first written: it is indexed, and an unchanged row updates in place.
            enqueued_at = j.enqueued_at
        "#,
        &c.message_ids,
        &c.queues,
        &c.functions,
        &c.args as &[Option<String>],
        &c.statuses,
        &c.attempts,
        &c.max_attempts,
        &c.last_errors as &[Option<String>],
        &c.results as &[Option<String>],
        &c.enqueued_at as &[Option<DateTime<Utc>>],
        &c.started_at as &[Option<DateTime<Utc>>],
        &c.finished_at as &[Option<DateTime<Utc>>],
        &c.workers as &[Option<String>],
        &c.order_ids as &[Option<i64>],
        &c.correlation_ids as &[Option<String>],
        &c.trace_ids as &[Option<String>],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// PostgreSQL text cannot hold NUL characters (and jsonb not `\u0000`); message bodies may.
fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// JSON text jsonb accepts: the `\u0000` escape becomes the replacement character.
fn sanitize_json(json: &str) -> String {
    json.replace("\\u0000", "\\ufffd")
}

/// What the journal knows about a message: its attempts and last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// The function that ran it.
    pub function: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Where it is.
    pub status: String,
    /// The last failure.
    pub last_error: Option<String>,
}

/// The journal's summaries of these messages.
///
/// # Errors
/// Database errors.
pub async fn summaries(pool: &PgPool, message_ids: &[String]) -> sqlx::Result<HashMap<String, JobSummary>> {
    let rows = sqlx::query!(
        "select message_id, function, attempts, status, last_error from job_journal where message_id = any($1)",
        message_ids
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.message_id,
                JobSummary { function: r.function, attempts: r.attempts, status: r.status, last_error: r.last_error },
            )
        })
        .collect())
}
