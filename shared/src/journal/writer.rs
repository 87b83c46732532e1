//! [`JournalWriter`]: the one background task per process that drains the [`Journal`]'s
//! channel. It folds the entries per message, holds in-progress states for [`HOLD`] (most jobs
//! then get written once, in their final state), gathers what is due for [`GATHER`] after each
//! write (one statement for many jobs rather than many small ones), and writes each batch with
//! the statement of [`crate::db::journal`], retrying with backoff while the database is away.
//!
//! [`Journal`]: super::Journal

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{JobStatus, JournalEntry};
use crate::{
    backoff::reconnect_backoff,
    db::{self, journal::JournalWrite},
};

/// Most entries taken from the channel at once.
const BATCH: usize = 4_000;

/// How long a job's in-progress state (Running) is held in memory before it is written.
/// Most jobs finish within it, and are then written once, in their final state, instead of
/// inserted and updated two or three times; a slower job shows on the board this much later.
const HOLD: Duration = Duration::from_millis(250);

/// The least time between two writes. Under load, reports arrive a few at a time: written as
/// they came, a busy process sent hundreds of statements a second of some twenty rows each, and
/// the statements' own cost was most of what the journal cost PostgreSQL (issue 15). A
/// finished job shows on the board at most this much later.
const GATHER: Duration = Duration::from_millis(100);

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
    /// during an outage, until `stop` plus a last attempt). Finished states are written at the
    /// next write, in-progress states after [`HOLD`] unless the job finished meanwhile; writes
    /// are at least [`GATHER`] apart.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut buffer = Vec::with_capacity(BATCH);
        let mut held: HashMap<String, RowUpdate> = HashMap::new();
        let mut last_write: Option<Instant> = None;
        loop {
            let next_due = next_write(&held, last_write);
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
            let now = Instant::now();
            if last_write.is_some_and(|at| now < at + GATHER) {
                continue;
            }
            let due: HashMap<String, RowUpdate> =
                held.extract_if(|_, row| row.finished_at.is_some() || row.held_since + HOLD <= now).collect();
            if !due.is_empty() {
                self.write_with_retry(due, &stop).await;
                last_write = Some(now);
            }
        }
    }

    async fn write_with_retry(&self, rows: HashMap<String, RowUpdate>, stop: &CancellationToken) {
        if rows.is_empty() {
            return;
        }
        let mut backoff = reconnect_backoff();
        loop {
            match write(&self.pool, &rows).await {
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

/// When the next write is due: when the first held row is (a finished one at once, a running
/// one after [`HOLD`]), but not before [`GATHER`] after the last write; never, with nothing held.
fn next_write(held: &HashMap<String, RowUpdate>, last_write: Option<Instant>) -> Option<Instant> {
    let first_due = held
        .values()
        .map(|row| if row.finished_at.is_some() { row.held_since } else { row.held_since + HOLD })
        .min()?;
    Some(last_write.map_or(first_due, |at| first_due.max(at + GATHER)))
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes the worker reports in one statement; `rows` is left as it was if it fails, for the retry.
async fn write(pool: &PgPool, rows: &HashMap<String, RowUpdate>) -> sqlx::Result<()> {
    let updates: Vec<JournalWrite<'_>> = rows.iter().map(|(id, row)| row.as_write(id)).collect();
    db::journal::upsert(&mut *pool.acquire().await?, &updates).await
}

/// The net effect of a batch of entries on one message's row.
#[derive(Debug)]
struct RowUpdate {
    /// When the writer first saw an entry for it (for [`HOLD`]).
    held_since: Instant,
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
            held_since: Instant::now(),
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

    fn started_in(id: &str, trace_id: Option<&str>) -> JournalEntry {
        let mut entry = started(id, Utc::now());
        if let JournalEntry::Started { trace_id: trace, .. } = &mut entry {
            *trace = trace_id.map(Into::into);
        }
        entry
    }

    #[test]
    fn a_write_is_due_when_the_first_held_row_is_but_never_sooner_than_the_gather_after_the_last() {
        let t = Utc::now();
        let mut held = HashMap::new();
        assert_eq!(next_write(&held, None), None, "nothing held, nothing to write");

        fold_into(&mut held, [started("running", t)].into_iter());
        let since = held["running"].held_since;
        assert_eq!(next_write(&held, None), Some(since + HOLD), "a running job waits for its hold");

        fold_into(&mut held, [finished("done", JobStatus::Done, None, t)].into_iter());
        let done_since = held["done"].held_since;
        assert_eq!(next_write(&held, None), Some(done_since), "a finished job is due at once");
        let last = done_since;
        assert_eq!(next_write(&held, Some(last)), Some(last + GATHER), "but not sooner than the gather");
        let long_ago = done_since.checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(next_write(&held, Some(long_ago)), Some(done_since));
    }

    #[test]
    fn a_job_keeps_the_trace_of_its_latest_traced_attempt() {
        let mut rows = HashMap::new();
        fold_into(&mut rows, [started_in("a", Some("first")), started_in("a", Some("second"))].into_iter());
        fold_into(&mut rows, [started_in("b", Some("first")), started_in("b", None)].into_iter());

        let trace = |id: &str| rows[id].trace_id.as_deref();
        assert_eq!([trace("a"), trace("b")], [Some("second"), Some("first")]);
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
