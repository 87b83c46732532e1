//! From a journal row to the task apalis-board displays, and the board's JSON codec.
//!
//! DESIGN.md asks to let apalis-sql convert journal rows (`TaskRow`) into tasks, but
//! apalis-sql 1.0.0-rc.9 does not compile against apalis-core 1.0.0 (it targets the
//! pre-1.0 three-parameter `Task`), so the conversion is [`into_task`].

use std::{str::FromStr, sync::Arc};

use apalis_core::{
    backend::{codec::Codec, queue::Queue},
    task::{ExecutionContext, Task, builder::TaskBuilder, metadata::MetadataStore, status::Status, task_id::TaskId},
};
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use shared::db::board::JobRow;

use super::backend::JournalError;

/// The board's codec: `Args` to and from the journal's JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonValueCodec;

impl<T: Serialize + DeserializeOwned> Codec<T> for JsonValueCodec {
    type Error = serde_json::Error;
    type Compact = Value;

    fn encode(&self, value: &T) -> Result<Value, serde_json::Error> {
        serde_json::to_value(value)
    }

    fn decode(&self, value: &Value) -> Result<T, serde_json::Error> {
        T::deserialize(value)
    }
}

/// Seconds since the epoch, as apalis-core keeps times.
pub fn unix(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or_default()
}

/// The task the board displays: timings as run/lock/done times, the worker as `lock_by`,
/// and the last error (or result) as the task's run result, which is what its page shows.
/// With `outcome_in_args`, a finished job's result is added to its arguments as `outcome`.
pub fn into_task(mut row: JobRow, outcome_in_args: bool) -> Result<Task<Value>, JournalError> {
    if outcome_in_args && let (Some(result), Some(args)) = (&row.result, row.args.as_object_mut()) {
        args.insert("outcome".into(), Value::String(result.clone()));
    }
    let status = Status::from_str(&row.status).map_err(|e| JournalError::BadRow(e.to_string()))?;
    let mut metadata = MetadataStore::new();
    let _ = metadata.insert("function", row.function);
    if let Some(order_id) = row.order_id {
        let _ = metadata.insert("order_id", order_id.to_string());
    }
    if let Some(correlation_id) = row.correlation_id {
        let _ = metadata.insert("correlation_id", correlation_id);
    }
    if let Some(trace_id) = row.trace_id {
        let _ = metadata.insert("trace_id", trace_id);
    }
    if let Some(result) = &row.result {
        let _ = metadata.insert("result", result.clone());
    }
    // The task page shows a run's result; only errors are worth it: a run's Ok value is raw
    // bytes in apalis-core (`Run<Vec<u8>>`), which the UI prints as a list of numbers. A
    // successful job's result line stays in the journal, the API and the order timeline.
    let outcome = match (&row.last_error, &status) {
        (Some(error), Status::Failed | Status::Killed | Status::Pending | Status::Running) => {
            Some(serde_json::json!({ "Err": error }))
        }
        _ => None,
    };
    let task = TaskBuilder::new(row.args)
        .task_id(TaskId::from_string(&row.message_id))
        .attempt(usize::try_from(row.attempts).unwrap_or_default())
        .status(status.clone())
        .max_attempts(usize::try_from(row.max_attempts).unwrap_or_default())
        .queue(Queue::from(row.queue))
        .run_at_timestamp(unix(row.enqueued_at))
        .lock_at(row.started_at.map(unix))
        .lock_by(row.worker.clone())
        .done_at(row.finished_at.map(unix))
        .with_metadata(metadata)
        .build();
    let Some(outcome) = outcome else { return Ok(task) };
    // `runs` has no builder setter; it is set through the context's serde form.
    let (args, context) = task.take();
    let mut context = serde_json::to_value(context.as_ref())?;
    context["runs"] = serde_json::json!([{
        "result": {
            "task_id": row.message_id,
            "attempt": row.attempts,
            "status": status.to_string(),
            "result": outcome,
        },
        "lock_at": row.started_at.map_or(0, |t| t.timestamp()),
        "lock_by": row.worker.unwrap_or_default(),
        "done_at": row.finished_at.map(|t| t.timestamp()),
    }]);
    let context: ExecutionContext = serde_json::from_value(context)?;
    Ok(Task::new_with_ctx(args, Arc::new(context)))
}
