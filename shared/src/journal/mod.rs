//! The job journal (DESIGN.md section 7): what happened to every job, in PostgreSQL, because
//! apalis-amqp keeps no such record and the board needs one.
//!
//! - [`JournalLayer`] sits on every worker and reports each attempt's start and end.
//! - [`Journal`] (this file) hands those reports to one [`JournalWriter`] per process, which
//!   folds them per message and writes each batch with one statement: the job path never waits
//!   for the journal, and under load many jobs share a round trip.
//! - A published message no worker has started yet (or, for a queue function, whose attempt
//!   has not had its turn at the database yet: [`admitted`]) has no row: the board (in the `orderflow`
//!   crate) shows it as Pending from the outbox (`crate::db::board`), so a job in a backlog is
//!   written once, by its worker, not inserted by the relay and then updated.
//! - [`WorkerHeartbeats`] keeps a row per live worker, for the board's worker list.
//! - The SQL is in [`crate::db::journal`] (rows written in `message_id` order, so writers in
//!   several processes never deadlock); pruning old rows and marking orphans is [`crate::retention`].
//! - The journal is observability, not state: a full channel drops entries (counted in
//!   `orderflow_journal_dropped_total`) rather than slowing jobs down.

mod heartbeats;
mod layer;
mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;

pub use heartbeats::{HEARTBEAT_INTERVAL, LiveWorker, WorkerHeartbeats};
pub use layer::{JournalArgs, JournalLayer, JournalService, admitted};
pub use writer::JournalWriter;

use crate::metrics::Metrics;

/// A job's status in the journal (the board's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Queued, not started: requeued by a shutdown mid-attempt, or pushed from the board. (A
    /// published message no worker has reported on has no row; the board shows it as Pending.)
    Pending,
    /// An attempt is under way.
    Running,
    /// Succeeded.
    Done,
    /// An attempt failed; a retry will follow (or a redelivery, after a shutdown).
    Failed,
    /// Failed for good: dead-lettered to `<queue>_error`; or orphaned: its worker stopped
    /// sending heartbeats mid-way and the retention sweep marked it, the reason in its error
    /// (a later report about the job, such as a redelivery's, replaces the mark).
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
    /// An attempt started.
    Started {
        /// The message (or cron run) id.
        message_id: String,
        /// The queue (or, for a cron run, the name its runs are journaled under).
        queue: String,
        /// The function.
        function: String,
        /// The arguments as JSON text.
        args: String,
        /// The order concerned, if any.
        order_id: Option<i64>,
        /// The request that started the chain.
        correlation_id: Option<String>,
        /// The W3C trace id of the attempt's span, if it has one.
        trace_id: Option<String>,
        /// The worker running it.
        worker: String,
        /// Attempts the job may take.
        max_attempts: i32,
        /// When the message was published.
        enqueued_at: DateTime<Utc>,
        /// When this attempt started: when apalis started it or, for a function that reports
        /// its start on admission, when it got its turn at the database.
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

impl Journal {
    /// A journal and the writer that drains it into `pool`; run the writer until `stop`.
    pub fn new(pool: PgPool, metrics: Arc<Metrics>) -> (Journal, JournalWriter) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        (Journal { sender, metrics }, JournalWriter::new(pool, receiver))
    }

    /// A journal whose entries the test reads itself.
    #[cfg(test)]
    pub(crate) fn for_tests() -> (Journal, mpsc::Receiver<JournalEntry>) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        (Journal { sender, metrics: Arc::default() }, receiver)
    }

    /// Records an entry, never waiting: if the writer is far behind, the entry is dropped.
    pub fn record(&self, entry: JournalEntry) {
        #[cfg(feature = "bench-switches")]
        if crate::bench_switches::off("journal") {
            return;
        }
        if self.sender.try_send(entry).is_err() {
            self.metrics.journal_dropped.inc();
        }
    }
}
