//! [`JournalWriter`]: the one background task per process that drains the [`Journal`]'s
//! channel. It folds the entries per message, holds in-progress states for [`HOLD`] (most jobs
//! then get written once, in their final state), and writes each batch with the two statements
//! of [`crate::db::journal`], retrying with backoff while the database is away.
//!
//! [`Journal`]: super::Journal

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{JobStatus, JournalEntry};
use crate::{
    backoff::reconnect_backoff,
    db::{self, journal::JournalWrite},
};

/// Most entries folded into one write.
const BATCH: usize = 4_000;

/// How long a job's in-progress state (Pending, Running) is held in memory before it is written.
/// Most jobs finish within it, and are then written once, in their final state, instead of
/// inserted and updated two or three times; a slower job shows on the board this much later.
const HOLD: Duration = Duration::from_millis(250);

/// The background task that writes journal entries.
#[derive(Debug)]
pub struct JournalWriter {
    pool: PgPool,
    receiver: mpsc::Receiver<JournalEntry>,
}

impl JournalWriter {
    /// A writer draining `receiver` into `pool`.
    pub(super) fn new(pool: PgPool, receiver: mpsc::Receiver<JournalEntry>) -> Self {
        JournalWriter { pool, receiver }
    }

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
                Err(e) if !db::is_transient(&e) => {
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

/// Writes the worker reports, then the relay's `Pending` reports, removing from `rows` what is
/// written.
async fn write(pool: &PgPool, rows: &mut HashMap<String, RowUpdate>) -> sqlx::Result<()> {
    // Two independent statements on one connection: no transaction needed (each is atomic),
    // which saves its two round trips per batch.
    let mut conn = pool.acquire().await?;
    let updates = writes(rows, |row| !row.queued_only);
    if !updates.is_empty() {
        db::journal::upsert(&mut conn, &updates).await?;
    }
    // Written: if the next statement fails, the retry must not add these attempts again.
    rows.retain(|_, row| row.queued_only);
    let queued = writes(rows, |_| true);
    if !queued.is_empty() {
        db::journal::insert_queued(&mut conn, &queued).await?;
    }
    Ok(())
}

/// The rows that `keep` selects, as the database layer writes them.
fn writes<'a>(rows: &'a HashMap<String, RowUpdate>, keep: impl Fn(&RowUpdate) -> bool) -> Vec<JournalWrite<'a>> {
    rows.iter().filter(|(_, row)| keep(row)).map(|(id, row)| row.as_write(id)).collect()
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
    trace_id: Option<String>,
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
            trace_id: None,
        }
    }
}

impl RowUpdate {
    fn as_write<'a>(&'a self, message_id: &'a str) -> JournalWrite<'a> {
        JournalWrite {
            message_id,
            queue: &self.queue,
            function: &self.function,
            args: self.args.as_deref(),
            status: self.status.unwrap_or(JobStatus::Running).as_str(),
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            last_error: self.last_error.as_deref(),
            result: self.result.as_deref(),
            enqueued_at: self.enqueued_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            worker: self.worker.as_deref(),
            order_id: self.order_id,
            correlation_id: self.correlation_id.as_deref(),
            trace_id: self.trace_id.as_deref(),
        }
    }
}

/// Folds entries, in order, into the rows not yet written: one update per message, since one
/// statement cannot touch a row twice.
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
                trace_id,
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
                row.trace_id = row.trace_id.take().or(trace_id);
                row.enqueued_at = Some(row.enqueued_at.map_or(enqueued_at, |at| at.min(enqueued_at)));
            }
            JournalEntry::Started {
                message_id,
                queue,
                function,
                args,
                order_id,
                correlation_id,
                trace_id,
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
                // The latest attempt's trace: a redelivery continues the message's trace anyway.
                row.trace_id = trace_id.or(row.trace_id.take());
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
            trace_id: Some(format!("trace-of-{id}")),
            worker: "w".into(),
            max_attempts: 4,
            enqueued_at: at,
            at,
        }
    }

    fn queued(id: &str, trace_id: &str) -> JournalEntry {
        JournalEntry::Queued {
            message_id: id.into(),
            queue: "q".into(),
            function: "f".into(),
            args: "{}".into(),
            order_id: Some(7),
            correlation_id: "c".into(),
            trace_id: Some(trace_id.into()),
            max_attempts: 4,
            enqueued_at: Utc::now(),
        }
    }

    fn started_in(id: &str, trace_id: &str) -> JournalEntry {
        let mut entry = started(id, Utc::now());
        if let JournalEntry::Started { trace_id: trace, .. } = &mut entry {
            *trace = Some(trace_id.into());
        }
        entry
    }

    #[test]
    fn a_job_keeps_the_trace_of_its_latest_attempt_over_its_messages() {
        let mut rows = HashMap::new();
        fold_into(&mut rows, [queued("a", "message"), started_in("a", "attempt")].into_iter());
        fold_into(&mut rows, [started_in("b", "attempt"), queued("b", "message")].into_iter());
        fold_into(&mut rows, [started_in("c", "first"), started_in("c", "second")].into_iter());
        fold_into(&mut rows, [queued("d", "message")].into_iter());

        let trace = |id: &str| rows[id].trace_id.as_deref();
        assert_eq!(
            [trace("a"), trace("b"), trace("c"), trace("d")],
            [Some("attempt"), Some("attempt"), Some("second"), Some("message")]
        );
    }

    fn finished(id: &str, status: JobStatus, error: Option<&str>, at: DateTime<Utc>) -> JournalEntry {
        JournalEntry::Finished { message_id: id.into(), status, error: error.map(Into::into), result: None, at }
    }

    #[test]
    fn entries_of_one_message_fold_into_its_latest_state() {
        let t = Utc::now();
        let mut rows = HashMap::new();
        fold_into(
            &mut rows,
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
        assert_eq!(a.trace_id.as_deref(), Some("trace-of-a"));
        let b = &rows["b"];
        assert_eq!((b.status, b.attempts, b.finished_at), (Some(JobStatus::Running), 1, None));
    }
}
