//! The error that marks a job cut short by shutdown. Its own module because both sides use it:
//! messaging (the shutdown guard raises it, the ack layer requeues on it) and the journal (which
//! records such an attempt as `Pending`, not `Failed`).

/// A job (or its retry) cut short because the worker is shutting down: the ack layer requeues
/// its message instead of dead-lettering it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by shutdown (the message is requeued)")]
pub struct ShutdownInterrupted;
