//! `FunctionError`: how a job function fails, and what apalis does about it.

use apalis::prelude::{AbortError, BoxDynError};
use shared::messaging::ShutdownInterrupted;

/// A failed job.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// Retrying cannot help (an order that does not exist, or is in a state the event
    /// contradicts): the message goes to `<queue>_error` at once.
    #[error("{0}")]
    Permanent(String),
    /// Probably passing (database or broker unreachable): retried with backoff, then
    /// dead-lettered.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
    /// Cut short by shutdown (a payment wait longer than the drain budget, or a wait for an
    /// unreachable database): nothing went wrong with the message, so it is requeued, not
    /// dead-lettered, whatever the worker's own state says at that instant.
    #[error("{0}")]
    Interrupted(&'static str),
}

impl From<sqlx::Error> for FunctionError {
    fn from(e: sqlx::Error) -> Self {
        FunctionError::Transient(e.into())
    }
}

impl FunctionError {
    /// The error apalis understands: permanent failures are an `AbortError` at the top level
    /// (apalis only recognises it there), so the retry layer gives up and the message is
    /// rejected without requeue.
    pub fn into_job_error(self) -> BoxDynError {
        match self {
            FunctionError::Permanent(_) => Box::new(AbortError::new(self)),
            // With its causes: "Failed to charge order 7: payment gateway unavailable: timeout".
            FunctionError::Transient(e) => format!("{e:#}").into(),
            // The ack layer requeues this error, and the retry layer does not retry it.
            FunctionError::Interrupted(_) => Box::new(ShutdownInterrupted),
        }
    }
}

/// What a job function returns to apalis: on success, a line saying what it did (the board
/// and the journal show it).
pub type JobResult = Result<String, BoxDynError>;
