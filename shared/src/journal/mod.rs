//! The job journal (DESIGN.md section 7): what happened to every job, in PostgreSQL, because
//! apalis-amqp keeps no such record and the board needs one.
//!
//! - [`JournalLayer`] sits on every worker and reports each attempt's start and end.
//! - [`Journal`] hands those reports to one background writer per process, which folds them
//!   per message and writes each batch with one statement: the job path never waits for the
//!   journal, and under load many jobs share a round trip.
//! - The outbox relay reports the messages it publishes as `Pending` ([`JournalEntry::Queued`]),
//!   so queued jobs show too; [`board::JournalBackend`] exposes the table to apalis-board.
//! - Rows are written in `message_id` order, so writers in several processes never deadlock on
//!   the same rows (they wait for each other at worst).
//! - The journal is observability, not state: a full channel drops entries (counted in
//!   `orderflow_journal_dropped_total`) rather than slowing jobs down.

pub mod board;
mod layer;
mod workers;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use layer::{JournalArgs, JournalLayer, JournalService};
pub use workers::{LiveWorker, WorkerHeartbeats};

use crate::{backoff::reconnect_backoff, metrics::Metrics};

/// A job's status in the journal (the board's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Queued, not started.
    Pending,
    /// An attempt is under way.
    Running,
    /// Succeeded.
    Done,
    /// An attempt failed; a retry will follow (or a redelivery, after a shutdown).
    Failed,
    /// Failed for good: dead-lettered to `<queue>_error`.
    Killed,
}

impl JobStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "Pending",
            JobStatus::Running => "Running",
            JobStatus::Done => "Done",
            JobStatus::Failed => "Failed",
            JobStatus::Killed => "Killed",
        }
    }
}

/// One report about one job.
#[derive(Debug, Clone)]
pub enum JournalEntry {
    /// The message was published to its queue and waits there. Never overrides what a worker
    /// already reported (the worker may be quicker than the relay's report).
    Queued {
        /// The message id.
        message_id: String,
        /// The queue.
        queue: String,
        /// The function consuming it.
        function: String,
        /// The arguments as JSON text.
        args: String,
        /// The order concerned, if any.
        order_id: Option<i64>,
        /// The request that started the chain.
        correlation_id: String,
        /// Attempts the job may take.
        max_attempts: i32,
        /// When the message was written.
        enqueued_at: DateTime<Utc>,
    },
    /// An attempt started.
    Started {
        /// The message (or cron run) id.
        message_id: String,
        /// The queue (or `expire_orders` for the cron).
        queue: String,
        /// The function.
        function: String,
        /// The arguments as JSON text.
        args: String,
        /// The order concerned, if any.
        order_id: Option<i64>,
        /// The request that started the chain.
        correlation_id: Option<String>,
        /// The worker running it.
        worker: String,
        /// Attempts the job may take.
        max_attempts: i32,
        /// When the message was published.
        enqueued_at: DateTime<Utc>,
        /// When this attempt started.
        at: DateTime<Utc>,
    },
    /// An attempt ended.
    Finished {
        /// The message (or cron run) id.
        message_id: String,
        /// Where the job is now.
        status: JobStatus,
        /// The error of a failed attempt.
        error: Option<String>,
        /// What a successful attempt did.
        result: Option<String>,
        /// When the attempt ended.
        at: DateTime<Utc>,
    },
}

/// Sends journal entries to the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Journal {
    sender: mpsc::Sender<JournalEntry>,
    metrics: Arc<Metrics>,
}

/// How many entries may wait for the writer before new ones are dropped.
const CAPACITY: usize = 200_000;
/// Most entries folded into one write.
const BATCH: usize = 4_000;

impl Journal {
    /// A journal and the writer that drains it into `pool`; run the writer until `stop`.
    pub fn new(pool: PgPool, metrics: Arc<Metrics>) -> (Journal, JournalWriter) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        (Journal { sender, metrics }, JournalWriter { pool, receiver })
    }

    /// Records an entry, never waiting: if the writer is far behind, the entry is dropped.
    pub fn record(&self, entry: JournalEntry) {
        if self.sender.try_send(entry).is_err() {
            self.metrics.journal_dropped.inc();
        }
    }
}

/// The background task that writes journal entries.
#[derive(Debug)]
pub struct JournalWriter {
    pool: PgPool,
    receiver: mpsc::Receiver<JournalEntry>,
}

/// How long a job's in-progress state (Pending, Running) is held in memory before it is written.
/// Most jobs finish within it, and are then written once, in their final state, instead of
/// inserted and updated two or three times; a slower job shows on the board this much later.
const HOLD: Duration = Duration::from_millis(250);

impl JournalWriter {
    /// Writes entries as they come until `stop` is cancelled and the channel is drained (or,
    /// during an outage, until `stop` plus a last attempt). Finished states are written at
    /// once; in-progress states after [`HOLD`], unless the job finished meanwhile.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut buffer = Vec::with_capacity(BATCH);
        let mut held: HashMap<String, RowUpdate> = HashMap::new();
        loop {
            let next_due = held.values().map(|row| row.held_since + HOLD).min();
            let received = tokio::select! {
                n = self.receiver.recv_many(&mut buffer, BATCH) => n,
                () = sleep_until(next_due) => 0,
                () = stop.cancelled() => {
                    // Take what is already queued, write everything, then stop.
                    while let Ok(entry) = self.receiver.try_recv() {
                        buffer.push(entry);
                    }
                    fold_into(&mut held, buffer.drain(..));
                    self.write_with_retry(std::mem::take(&mut held), &stop).await;
                    break;
                }
            };
            if received == 0 && self.receiver.is_closed() && self.receiver.is_empty() {
                // Every sender is gone: nothing more will come.
                fold_into(&mut held, buffer.drain(..));
                self.write_with_retry(std::mem::take(&mut held), &stop).await;
                break;
            }
            fold_into(&mut held, buffer.drain(..));
            let now = tokio::time::Instant::now();
            let due: HashMap<String, RowUpdate> =
                held.extract_if(|_, row| row.finished_at.is_some() || row.held_since + HOLD <= now).collect();
            self.write_with_retry(due, &stop).await;
        }
    }

    async fn write_with_retry(&self, mut rows: HashMap<String, RowUpdate>, stop: &CancellationToken) {
        if rows.is_empty() {
            return;
        }
        let mut backoff = reconnect_backoff();
        loop {
            match write(&self.pool, &mut rows).await {
                Ok(()) => return,
                Err(e) if stop.is_cancelled() => {
                    tracing::warn!(error = %e, entries = rows.len(), "journal entries lost at shutdown");
                    return;
                }
                // Retrying cannot fix a batch the database refuses; never let it block the rest.
                Err(e) if !crate::db::is_transient(&e) => {
                    tracing::error!(error = %e, entries = rows.len(), "journal batch refused by the database; dropped");
                    return;
                }
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "could not write the job journal; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => {}
                    }
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The net effect of a batch of entries on one message's row.
#[derive(Debug)]
struct RowUpdate {
    /// When the writer first saw an entry for it (for [`HOLD`]).
    held_since: tokio::time::Instant,
    /// Only a `Queued` report: insert if absent, never update.
    queued_only: bool,
    queue: String,
    function: String,
    args: Option<String>,
    status: Option<JobStatus>,
    attempts: i32,
    max_attempts: i32,
    last_error: Option<String>,
    result: Option<String>,
    enqueued_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    worker: Option<String>,
    order_id: Option<i64>,
    correlation_id: Option<String>,
}

impl Default for RowUpdate {
    fn default() -> Self {
        RowUpdate {
            held_since: tokio::time::Instant::now(),
            queued_only: false,
            queue: String::new(),
            function: String::new(),
            args: None,
            status: None,
            attempts: 0,
            max_attempts: 0,
            last_error: None,
            result: None,
            enqueued_at: None,
            started_at: None,
            finished_at: None,
            worker: None,
            order_id: None,
            correlation_id: None,
        }
    }
}

/// Folds entries, in order, into one update per message (one statement cannot touch a row twice).
#[cfg(test)]
fn fold(entries: impl Iterator<Item = JournalEntry>) -> HashMap<String, RowUpdate> {
    let mut rows = HashMap::new();
    fold_into(&mut rows, entries);
    rows
}

/// Folds entries, in order, into the rows not yet written.
fn fold_into(rows: &mut HashMap<String, RowUpdate>, entries: impl Iterator<Item = JournalEntry>) {
    for entry in entries {
        match entry {
            JournalEntry::Queued {
                message_id,
                queue,
                function,
                args,
                order_id,
                correlation_id,
                max_attempts,
                enqueued_at,
            } => {
                let fresh = !rows.contains_key(&message_id);
                let row = rows.entry(message_id).or_default();
                if fresh {
                    row.queued_only = true;
                    row.status = Some(JobStatus::Pending);
                    row.queue = queue;
                    row.function = function;
                    row.max_attempts = max_attempts;
                }
                row.args.get_or_insert(args);
                row.order_id = row.order_id.or(order_id);
                row.correlation_id.get_or_insert(correlation_id);
                row.enqueued_at = Some(row.enqueued_at.map_or(enqueued_at, |at| at.min(enqueued_at)));
            }
            JournalEntry::Started {
                message_id,
                queue,
                function,
                args,
                order_id,
                correlation_id,
                worker,
                max_attempts,
                enqueued_at,
                at,
            } => {
                let row = rows.entry(message_id).or_default();
                row.queued_only = false;
                row.queue = queue;
                row.function = function;
                row.args.get_or_insert(args);
                row.order_id = row.order_id.or(order_id);
                row.correlation_id = row.correlation_id.take().or(correlation_id);
                row.worker = Some(worker);
                row.max_attempts = max_attempts;
                row.enqueued_at.get_or_insert(enqueued_at);
                row.started_at = Some(at);
                row.finished_at = None;
                row.attempts += 1;
                row.status = Some(JobStatus::Running);
            }
            JournalEntry::Finished { message_id, status, error, result, at } => {
                let row = rows.entry(message_id).or_default();
                row.queued_only = false;
                row.status = Some(status);
                row.finished_at = Some(at);
                if error.is_some() {
                    row.last_error = error;
                }
                if result.is_some() {
                    row.result = result;
                }
            }
        }
    }
}

async fn write(pool: &PgPool, rows: &mut HashMap<String, RowUpdate>) -> sqlx::Result<()> {
    // Two independent statements on one connection: no transaction needed (each is atomic),
    // which saves its two round trips per batch.
    let mut conn = pool.acquire().await?;
    let updates = in_lock_order(rows, |row| !row.queued_only);
    if !updates.is_empty() {
        upsert(&mut conn, &updates).await?;
    }
    // Written: if the next statement fails, the retry must not add these attempts again.
    rows.retain(|_, row| row.queued_only);
    let queued = in_lock_order(rows, |_| true);
    if !queued.is_empty() {
        insert_queued(&mut conn, &queued).await?;
    }
    Ok(())
}

/// The rows that `keep` selects, in the one lock order every writer uses (relay reports and
/// worker reports, in every process), so that concurrent batches never deadlock.
fn in_lock_order(rows: &HashMap<String, RowUpdate>, keep: impl Fn(&RowUpdate) -> bool) -> Vec<(&String, &RowUpdate)> {
    let mut sorted: Vec<(&String, &RowUpdate)> = rows.iter().filter(|(_, row)| keep(row)).collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
}

/// Pending rows for published messages, unless a worker reported on them already.
async fn insert_queued(conn: &mut sqlx::PgConnection, rows: &[(&String, &RowUpdate)]) -> sqlx::Result<()> {
    let ids: Vec<String> = rows.iter().map(|(id, _)| (*id).clone()).collect();
    let queues: Vec<String> = rows.iter().map(|(_, r)| r.queue.clone()).collect();
    let functions: Vec<String> = rows.iter().map(|(_, r)| r.function.clone()).collect();
    let args: Vec<Option<String>> = rows.iter().map(|(_, r)| r.args.as_deref().map(sanitize_json)).collect();
    let max_attempts: Vec<i32> = rows.iter().map(|(_, r)| r.max_attempts).collect();
    let enqueued: Vec<Option<DateTime<Utc>>> = rows.iter().map(|(_, r)| r.enqueued_at).collect();
    let orders: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.order_id).collect();
    let correlations: Vec<Option<String>> = rows.iter().map(|(_, r)| r.correlation_id.clone()).collect();
    sqlx::query!(
        r#"
        insert into job_journal (message_id, queue, function, args, status, max_attempts, enqueued_at, order_id,
                                 correlation_id)
        select u.message_id, u.queue, u.function, coalesce(u.args::jsonb, '{}'::jsonb), 'Pending', u.max_attempts,
               coalesce(u.enqueued_at, now()), u.order_id, u.correlation_id
        from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::bigint[],
                    $8::text[])
             with ordinality as u(message_id, queue, function, args, max_attempts, enqueued_at, order_id,
                                  correlation_id, position)
        order by u.position
        on conflict (message_id) do nothing
        "#,
        &ids,
        &queues,
        &functions,
        &args as &[Option<String>],
        &max_attempts,
        &enqueued as &[Option<DateTime<Utc>>],
        &orders as &[Option<i64>],
        &correlations as &[Option<String>],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What workers reported: insert or update.
async fn upsert(conn: &mut sqlx::PgConnection, rows: &[(&String, &RowUpdate)]) -> sqlx::Result<()> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut queues = Vec::with_capacity(rows.len());
    let mut functions = Vec::with_capacity(rows.len());
    let mut args = Vec::with_capacity(rows.len());
    let mut statuses = Vec::with_capacity(rows.len());
    let mut attempts = Vec::with_capacity(rows.len());
    let mut max_attempts = Vec::with_capacity(rows.len());
    let mut errors = Vec::with_capacity(rows.len());
    let mut results = Vec::with_capacity(rows.len());
    let mut enqueued = Vec::with_capacity(rows.len());
    let mut started = Vec::with_capacity(rows.len());
    let mut finished = Vec::with_capacity(rows.len());
    let mut workers = Vec::with_capacity(rows.len());
    let mut orders = Vec::with_capacity(rows.len());
    let mut correlations = Vec::with_capacity(rows.len());
    for (id, row) in rows {
        ids.push((*id).clone());
        queues.push(row.queue.clone());
        functions.push(row.function.clone());
        args.push(row.args.as_deref().map(sanitize_json));
        statuses.push(row.status.unwrap_or(JobStatus::Running).as_str().to_owned());
        attempts.push(row.attempts);
        max_attempts.push(row.max_attempts);
        errors.push(row.last_error.as_deref().map(without_nul));
        results.push(row.result.as_deref().map(without_nul));
        enqueued.push(row.enqueued_at);
        started.push(row.started_at);
        finished.push(row.finished_at);
        workers.push(row.worker.clone());
        orders.push(row.order_id);
        correlations.push(row.correlation_id.clone());
    }
    // A `Finished` whose `Started` went in an earlier batch has no queue: it only updates.
    sqlx::query!(
        r#"
        insert into job_journal as j
            (message_id, queue, function, args, status, attempts, max_attempts, last_error, result,
             enqueued_at, started_at, finished_at, worker, order_id, correlation_id)
        select u.message_id, u.queue, u.function, coalesce(u.args::jsonb, '{}'::jsonb), u.status, u.attempts,
               u.max_attempts, u.last_error, u.result, coalesce(u.enqueued_at, now()), u.started_at,
               u.finished_at, u.worker, u.order_id, u.correlation_id
        from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::text[],
                    $9::text[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::text[],
                    $14::bigint[], $15::text[])
             with ordinality as u(message_id, queue, function, args, status, attempts, max_attempts, last_error,
                                  result, enqueued_at, started_at, finished_at, worker, order_id, correlation_id,
                                  position)
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
            args = case when j.args = '{}'::jsonb then excluded.args else j.args end,
            -- enqueued_at stays as first written: it is indexed, and an unchanged row updates in place.
            enqueued_at = j.enqueued_at
        "#,
        &ids,
        &queues,
        &functions,
        &args as &[Option<String>],
        &statuses,
        &attempts,
        &max_attempts,
        &errors as &[Option<String>],
        &results as &[Option<String>],
        &enqueued as &[Option<DateTime<Utc>>],
        &started as &[Option<DateTime<Utc>>],
        &finished as &[Option<DateTime<Utc>>],
        &workers as &[Option<String>],
        &orders as &[Option<i64>],
        &correlations as &[Option<String>],
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

/// One pruning pass; returns how many rows went.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: &str, at: DateTime<Utc>) -> JournalEntry {
        JournalEntry::Started {
            message_id: id.into(),
            queue: "q".into(),
            function: "f".into(),
            args: "{}".into(),
            order_id: Some(7),
            correlation_id: None,
            worker: "w".into(),
            max_attempts: 4,
            enqueued_at: at,
            at,
        }
    }

    fn finished(id: &str, status: JobStatus, error: Option<&str>, at: DateTime<Utc>) -> JournalEntry {
        JournalEntry::Finished { message_id: id.into(), status, error: error.map(Into::into), result: None, at }
    }

    #[test]
    fn entries_of_one_message_fold_into_its_latest_state() {
        let t = Utc::now();
        let rows = fold(
            [
                started("a", t),
                finished("a", JobStatus::Failed, Some("boom"), t),
                started("a", t),
                finished("a", JobStatus::Done, None, t),
                started("b", t),
            ]
            .into_iter(),
        );

        let a = &rows["a"];
        assert_eq!((a.status, a.attempts, a.last_error.as_deref()), (Some(JobStatus::Done), 2, Some("boom")));
        assert!(a.finished_at.is_some());
        let b = &rows["b"];
        assert_eq!((b.status, b.attempts, b.finished_at), (Some(JobStatus::Running), 1, None));
    }
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

/// One thing that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Where it was recorded: `order`, `outbox`, `job` or `notification`.
    pub source: String,
    /// What happened, in a few words.
    pub event: String,
    /// Details: the job's result or error, the event's message id.
    pub detail: Option<String>,
}

/// Everything recorded about an order, in time order: its creation and state transitions, the
/// events written and published for it, the jobs that handled them (with results and errors),
/// and its notifications. Jobs are journaled as their latest attempt.
///
/// # Errors
/// Database errors.
pub async fn order_timeline(pool: &PgPool, order_id: i64) -> sqlx::Result<Vec<TimelineEntry>> {
    sqlx::query_as!(
        TimelineEntry,
        r#"
        select at as "at!", source as "source!", event as "event!", detail
        from (
            select created_at as at, 'order' as source, 'order created (Pending)' as event,
                   format('total %s', total) as detail, 0 as rank
            from orders where id = $1
            union all
            select processing_at, 'order', 'Pending → Processing', 'payment started by message ' || payment_message_id, 0
            from orders where id = $1 and processing_at is not null
            union all
            select updated_at, 'order', 'Processing → ' || status, null, 0
            from orders where id = $1 and status in ('Completed', 'Expired')
            union all
            select created_at, 'outbox', event_type || ' written', 'message ' || message_id, 1
            from outbox where order_id = $1
            union all
            select sent_at, 'outbox', event_type || ' published', 'message ' || message_id, 2
            from outbox where order_id = $1 and sent_at is not null
            union all
            select started_at, 'job', function || ' started (attempt ' || attempts || ')', 'message ' || message_id, 3
            from job_journal where order_id = $1 and started_at is not null
            union all
            -- One row per job: a success after retries still tells what the failures were.
            select finished_at, 'job', function || ' ' || status,
                   case when status = 'Done' and attempts > 1 and last_error is not null
                        then format('%s (after %s failed attempt(s), the last: %s)', result, attempts - 1, last_error)
                        else coalesce(result, last_error) end,
                   4
            from job_journal where order_id = $1 and finished_at is not null
            union all
            select created_at, 'notification', type || ' notification', message, 5
            from notifications where order_id = $1
        ) as timeline
        order by at, rank
        "#,
        order_id
    )
    .fetch_all(pool)
    .await
}
