//! `JournalBackend<Args>`: the job journal as an apalis backend, so apalis-board can list and
//! show every job. apalis-board only lists backends implementing apalis-core's `Metrics`,
//! `ListWorkers`, `ListQueues`, `ListTasks`, `ListAllTasks`, `FetchById` and `TaskSink`; the
//! AMQP backend implements none, so the board reads the journal instead. It is never given to a
//! worker: the workers consume RabbitMQ and write the journal.
//!
//! DESIGN.md asks to let apalis-sql convert journal rows (`TaskRow`) into tasks, but
//! apalis-sql 1.0.0-rc.9 does not compile against apalis-core 1.0.0 (it targets the
//! pre-1.0 three-parameter `Task`), so the conversion is [`JournalRow::into_task`].

use std::{
    marker::PhantomData,
    pin::Pin,
    str::FromStr,
    sync::Arc,
    task::{Context, Poll},
};

use apalis_core::{
    backend::{
        Backend, BackendConfig, FetchById, Filter, ListAllTasks, ListQueues, ListTasks, ListWorkers, Metrics,
        QueueInfo, RunningWorker, StatType, Statistic, TaskSink, TaskSinkError, WireFormatBackend, codec::Codec,
        queue::Queue,
    },
    layers::Identity,
    task::{ExecutionContext, Task, builder::TaskBuilder, metadata::MetadataStore, status::Status, task_id::TaskId},
    worker::context::WorkerContext,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::HEARTBEAT_INTERVAL;
use crate::{
    events::{EventType, OrderCompleted, OrderCreated, OrderExpired},
    messaging::OutboxSignal,
};

/// The arguments of a queue the board shows, and what a push from the board enqueues.
pub trait BoardArgs: Serialize + DeserializeOwned + Send + 'static {
    /// The event a pushed job is published as; `None` where pushing makes no sense (cron).
    const EVENT: Option<EventType>;
    /// Whether the board shows a finished job's result among its arguments (as `outcome`).
    /// The UI has no other place for it; events keep their arguments exactly as sent.
    const OUTCOME_IN_ARGS: bool = false;
}

impl BoardArgs for OrderCreated {
    const EVENT: Option<EventType> = Some(EventType::OrderCreated);
}

impl BoardArgs for OrderCompleted {
    const EVENT: Option<EventType> = Some(EventType::OrderCompleted);
}

impl BoardArgs for OrderExpired {
    const EVENT: Option<EventType> = Some(EventType::OrderExpired);
}

/// The arguments of an `expire_orders` run, as journaled, with its outcome once finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryRun {
    /// The tick the run was scheduled for.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// What the run did ("3 orders expired", or a skip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl BoardArgs for ExpiryRun {
    const EVENT: Option<EventType> = None;
    const OUTCOME_IN_ARGS: bool = true;
}

/// Why the board could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// JSON (de)serialisation failed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// A row holds something the board cannot show.
    #[error("unreadable journal row: {0}")]
    BadRow(String),
    /// The operation makes no sense for this queue.
    #[error("{0}")]
    Unsupported(&'static str),
}

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

/// A `BackendConfig::Kind` of our own, so our `TaskSink` stays clear of apalis-core's blanket
/// implementations for its `Durable` and `Ephemeral` kinds.
#[derive(Debug, Clone, Copy)]
pub struct ThroughOutbox;

/// What a journal backend shows.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The queue this backend shows.
    pub queue: String,
    /// Every queue on the board, so a queue without jobs yet is still listed.
    pub all_queues: Arc<Vec<String>>,
}

/// One queue of the journal, for apalis-board.
pub struct JournalBackend<Args> {
    pool: PgPool,
    outbox: OutboxSignal,
    config: JournalConfig,
    codec: JsonValueCodec,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> Clone for JournalBackend<Args> {
    fn clone(&self) -> Self {
        JournalBackend {
            pool: self.pool.clone(),
            outbox: self.outbox.clone(),
            config: self.config.clone(),
            codec: self.codec,
            _args: PhantomData,
        }
    }
}

impl<Args> std::fmt::Debug for JournalBackend<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalBackend").field("queue", &self.config.queue).finish_non_exhaustive()
    }
}

impl<Args> JournalBackend<Args> {
    /// The journal of `queue`; `all_queues` lists every queue on the board. A push writes an
    /// outbox row and wakes the relay through `outbox`.
    pub fn new(pool: PgPool, outbox: OutboxSignal, queue: impl Into<String>, all_queues: Arc<Vec<String>>) -> Self {
        JournalBackend {
            pool,
            outbox,
            config: JournalConfig { queue: queue.into(), all_queues },
            codec: JsonValueCodec,
            _args: PhantomData,
        }
    }
}

impl<Args> Backend for JournalBackend<Args> {
    type Task = Task<Value>;
    type Error = JournalError;

    fn poll_ready(&mut self, _: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), JournalError>> {
        Poll::Ready(Err(JournalError::Unsupported("the journal backend is read-only; workers consume RabbitMQ")))
    }

    fn poll_next(&mut self, _: &mut Context<'_>, _: &WorkerContext) -> Poll<Option<Result<Task<Value>, JournalError>>> {
        Poll::Ready(None)
    }

    fn poll_close(&mut self, _: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), JournalError>> {
        Poll::Ready(Ok(()))
    }
}

impl<Args> BackendConfig for JournalBackend<Args> {
    type Args = Args;
    type Id = String;
    type Kind = ThroughOutbox;
    type Config = JournalConfig;
    type Layer = Identity;

    fn config(&self) -> &JournalConfig {
        &self.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Identity {
        Identity::new()
    }
}

impl<Args> WireFormatBackend for JournalBackend<Args> {
    type Codec = JsonValueCodec;
    type Compact = Value;

    fn codec(&self) -> &JsonValueCodec {
        &self.codec
    }
}

/// A journal row as the board reads it.
#[derive(Debug)]
struct JournalRow {
    message_id: String,
    queue: String,
    function: String,
    args: Value,
    status: String,
    attempts: i32,
    max_attempts: i32,
    last_error: Option<String>,
    result: Option<String>,
    enqueued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    worker: Option<String>,
    order_id: Option<i64>,
    correlation_id: Option<String>,
}

fn unix(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or_default()
}

impl JournalRow {
    /// The task the board displays: timings as run/lock/done times, the worker as `lock_by`,
    /// and the last error (or result) as the task's run result, which is what its page shows.
    fn into_task(mut self, outcome_in_args: bool) -> Result<Task<Value>, JournalError> {
        if outcome_in_args && let (Some(result), Some(args)) = (&self.result, self.args.as_object_mut()) {
            args.insert("outcome".into(), Value::String(result.clone()));
        }
        let status = Status::from_str(&self.status).map_err(|e| JournalError::BadRow(e.to_string()))?;
        let mut metadata = MetadataStore::new();
        let _ = metadata.insert("function", self.function);
        if let Some(order_id) = self.order_id {
            let _ = metadata.insert("order_id", order_id.to_string());
        }
        if let Some(correlation_id) = self.correlation_id {
            let _ = metadata.insert("correlation_id", correlation_id);
        }
        if let Some(result) = &self.result {
            let _ = metadata.insert("result", result.clone());
        }
        // The task page shows a run's result; only errors are worth it: a run's Ok value is raw
        // bytes in apalis-core (`Run<Vec<u8>>`), which the UI prints as a list of numbers. A
        // successful job's result line stays in the journal, the API and the order timeline.
        let outcome = match (&self.last_error, &status) {
            (Some(error), Status::Failed | Status::Killed | Status::Pending | Status::Running) => {
                Some(serde_json::json!({ "Err": error }))
            }
            _ => None,
        };
        let task = TaskBuilder::new(self.args)
            .task_id(TaskId::from_string(&self.message_id))
            .attempt(usize::try_from(self.attempts).unwrap_or_default())
            .status(status.clone())
            .max_attempts(usize::try_from(self.max_attempts).unwrap_or_default())
            .queue(Queue::from(self.queue))
            .run_at_timestamp(unix(self.enqueued_at))
            .lock_at(self.started_at.map(unix))
            .lock_by(self.worker.clone())
            .done_at(self.finished_at.map(unix))
            .with_metadata(metadata)
            .build();
        let Some(outcome) = outcome else { return Ok(task) };
        // `runs` has no builder setter; it is set through the context's serde form.
        let (args, context) = task.take();
        let mut context = serde_json::to_value(context.as_ref())?;
        context["runs"] = serde_json::json!([{
            "result": {
                "task_id": self.message_id,
                "attempt": self.attempts,
                "status": status.to_string(),
                "result": outcome,
            },
            "lock_at": self.started_at.map_or(0, |t| t.timestamp()),
            "lock_by": self.worker.unwrap_or_default(),
            "done_at": self.finished_at.map(|t| t.timestamp()),
        }]);
        let context: ExecutionContext = serde_json::from_value(context)?;
        Ok(Task::new_with_ctx(args, Arc::new(context)))
    }
}

/// `Filter::offset` multiplies in u32 and overflows on `page=0`; this saturates instead.
fn limit_offset(filter: &Filter) -> (i64, i64) {
    let limit = i64::from(filter.page_size.unwrap_or(10).clamp(1, 500));
    let offset = (i64::from(filter.page.max(1)) - 1) * limit;
    (limit, offset)
}

impl<Args: BoardArgs> JournalBackend<Args> {
    async fn tasks(&self, queue: Option<&str>, filter: &Filter) -> Result<Vec<Task<Value>>, JournalError> {
        let (limit, offset) = limit_offset(filter);
        let status = filter.status.as_ref().map(ToString::to_string);
        let rows = sqlx::query_as!(
            JournalRow,
            r#"
            select message_id, queue, function, args, status, attempts, max_attempts, last_error, result,
                   enqueued_at, started_at, finished_at, worker, order_id, correlation_id
            from job_journal
            where ($1::text is null or queue = $1) and ($2::text is null or status = $2)
            order by enqueued_at desc, message_id
            limit $3 offset $4
            "#,
            queue,
            status,
            limit,
            offset
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|row| row.into_task(Args::OUTCOME_IN_ARGS)).collect()
    }

    /// Statistic titles are the keys the board's UI translates and paginates by.
    async fn stats(&self, queue: Option<&str>) -> Result<Vec<Statistic>, JournalError> {
        let row = sqlx::query!(
            r#"
            select count(*) as "total!",
                   count(*) filter (where status = 'Pending') as "pending!",
                   count(*) filter (where status = 'Running') as "running!",
                   count(*) filter (where status = 'Done') as "done!",
                   count(*) filter (where status = 'Failed') as "failed!",
                   count(*) filter (where status = 'Killed') as "killed!",
                   extract(epoch from max(enqueued_at))::bigint as most_recent,
                   extract(epoch from min(enqueued_at) filter (where status = 'Pending'))::bigint as oldest_pending
            from job_journal
            where ($1::text is null or queue = $1)
            "#,
            queue
        )
        .fetch_one(&self.pool)
        .await?;
        let finished = row.done + row.failed + row.killed;
        #[expect(clippy::cast_precision_loss, reason = "a percentage for display")]
        let success = if finished == 0 { 0.0 } else { row.done as f64 * 100.0 / finished as f64 };
        let number = |title: &str, value: i64, priority: u64| Statistic {
            title: title.to_owned(),
            stat_type: StatType::Number,
            value: value.to_string(),
            priority: Some(priority),
        };
        let mut stats = vec![
            number("TOTAL_JOBS", row.total, 0),
            number("PENDING_JOBS", row.pending, 1),
            number("RUNNING_JOBS", row.running, 2),
            number("DONE_JOBS", row.done, 3),
            number("FAILED_JOBS", row.failed, 4),
            number("KILLED_JOBS", row.killed, 5),
            Statistic {
                title: "SUCCESS_RATE".into(),
                stat_type: StatType::Percentage,
                value: format!("{success:.1}"),
                priority: Some(6),
            },
        ];
        for (title, at, priority) in
            [("MOST_RECENT_JOB", row.most_recent, 7), ("OLDEST_PENDING_JOB", row.oldest_pending, 8)]
        {
            if let Some(at) = at {
                stats.push(Statistic {
                    title: title.into(),
                    stat_type: StatType::Timestamp,
                    value: at.to_string(),
                    priority: Some(priority),
                });
            }
        }
        Ok(stats)
    }

    async fn workers(&self, queue: Option<&str>) -> Result<Vec<RunningWorker>, JournalError> {
        let silent_for = chrono::Duration::from_std(HEARTBEAT_INTERVAL * 3).unwrap_or_default();
        let rows = sqlx::query!(
            r#"
            select name, queue, started_at, last_heartbeat, layers
            from workers
            where ($1::text is null or queue = $1) and last_heartbeat > now() - $2::interval
            order by queue, name
            "#,
            queue,
            silent_for as _
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|w| RunningWorker {
                id: w.name,
                queue: w.queue,
                backend: "RabbitMQ (apalis-amqp)".into(),
                started_at: unix(w.started_at),
                last_heartbeat: unix(w.last_heartbeat),
                layers: w.layers,
            })
            .collect())
    }
}

impl<Args: BoardArgs> ListTasks for JournalBackend<Args> {
    async fn list_tasks(&self, filter: &Filter) -> Result<Vec<Task<Value>>, JournalError> {
        self.tasks(Some(&self.config.queue), filter).await
    }
}

impl<Args: BoardArgs> ListAllTasks for JournalBackend<Args> {
    async fn list_all_tasks(&self, filter: &Filter) -> Result<Vec<Task<Value>>, JournalError> {
        self.tasks(None, filter).await
    }
}

impl<Args: BoardArgs> FetchById for JournalBackend<Args> {
    async fn fetch_by_id(&mut self, task_id: &TaskId) -> Result<Option<Task<Value>>, JournalError> {
        let row = sqlx::query_as!(
            JournalRow,
            r#"
            select message_id, queue, function, args, status, attempts, max_attempts, last_error, result,
                   enqueued_at, started_at, finished_at, worker, order_id, correlation_id
            from job_journal
            where message_id = $1 and queue = $2
            "#,
            task_id.to_string(),
            self.config.queue
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| row.into_task(Args::OUTCOME_IN_ARGS)).transpose()
    }
}

impl<Args: BoardArgs> Metrics for JournalBackend<Args> {
    async fn global(&self) -> Result<Vec<Statistic>, JournalError> {
        self.stats(None).await
    }

    async fn fetch_by_queue(&self) -> Result<Vec<Statistic>, JournalError> {
        self.stats(Some(&self.config.queue)).await
    }
}

impl<Args: BoardArgs> ListWorkers for JournalBackend<Args> {
    async fn list_workers(&self) -> Result<Vec<RunningWorker>, JournalError> {
        self.workers(Some(&self.config.queue)).await
    }

    async fn list_all_workers(&self) -> Result<Vec<RunningWorker>, JournalError> {
        self.workers(None).await
    }
}

impl<Args: BoardArgs> ListQueues for JournalBackend<Args> {
    async fn list_queues(&self) -> Result<Vec<QueueInfo>, JournalError> {
        let mut queues: Vec<String> = self.config.all_queues.as_ref().clone();
        let journaled = sqlx::query_scalar!("select distinct queue from job_journal").fetch_all(&self.pool).await?;
        for queue in journaled {
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        let mut infos = Vec::with_capacity(queues.len());
        for name in queues {
            let activity = sqlx::query_scalar!(
                r#"
                select count(j.message_id) as "jobs!"
                from generate_series(current_date - 6, current_date, interval '1 day') as d(day)
                left join job_journal j on j.queue = $1 and j.enqueued_at::date = d.day::date
                group by d.day
                order by d.day
                "#,
                name
            )
            .fetch_all(&self.pool)
            .await?;
            infos.push(QueueInfo {
                stats: self.stats(Some(&name)).await?,
                workers: self.workers(Some(&name)).await?.into_iter().map(|w| w.id).collect(),
                activity: activity.into_iter().map(|n| usize::try_from(n).unwrap_or_default()).collect(),
                name,
            });
        }
        Ok(infos)
    }
}

impl<Args: BoardArgs> JournalBackend<Args> {
    /// A push from the board: an outbox row (the relay publishes it, like any event) and its
    /// Pending journal row, in one transaction.
    async fn enqueue(&self, task: Task<Args>) -> Result<(), TaskSinkError<JournalError>> {
        let Some(event) = Args::EVENT else {
            return Err(TaskSinkError::PushError(JournalError::Unsupported("cron runs are scheduled, not pushed")));
        };
        let payload = serde_json::to_string(&task.args).map_err(|e| TaskSinkError::CodecError(e.into()))?;
        let message_id =
            task.task_id().and_then(|id| Uuid::parse_str(&id.to_string()).ok()).unwrap_or_else(Uuid::now_v7);
        let order_id =
            serde_json::from_str::<Value>(&payload).ok().and_then(|v| v.get("orderId").and_then(Value::as_i64));
        sqlx::query!(
            r#"
            with event as (
                insert into outbox (message_id, event_type, order_id, payload, correlation_id)
                values ($1, $2, $3, $4::text::json, 'board')
            )
            insert into job_journal (message_id, queue, function, args, status, max_attempts, order_id, correlation_id)
            values ($1::uuid::text, $5, $6, $4::text::jsonb, 'Pending', $7, $3, 'board')
            on conflict (message_id) do nothing
            "#,
            message_id,
            event.as_str(),
            order_id,
            payload,
            self.config.queue,
            event.function(),
            i32::try_from(task.max_attempts().unwrap_or(1)).unwrap_or(1),
        )
        .execute(&self.pool)
        .await
        .map_err(|e| TaskSinkError::PushError(e.into()))?;
        self.outbox.notify();
        Ok(())
    }
}

impl<Args: BoardArgs> TaskSink<Args, ThroughOutbox> for JournalBackend<Args> {
    // The board only calls `push_task`; the poll-style half is not needed.
    fn start_send(self: Pin<&mut Self>, _: Task<Args>) -> Result<(), TaskSinkError<JournalError>> {
        Err(TaskSinkError::PushError(JournalError::Unsupported("use push_task")))
    }

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), TaskSinkError<JournalError>>> {
        Poll::Ready(Ok(()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), TaskSinkError<JournalError>>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), TaskSinkError<JournalError>>> {
        Poll::Ready(Ok(()))
    }

    async fn push(&mut self, args: Args) -> Result<(), TaskSinkError<JournalError>> {
        self.enqueue(Task::new(args)).await
    }

    async fn push_bulk(&mut self, all: Vec<Args>) -> Result<(), TaskSinkError<JournalError>> {
        for args in all {
            self.enqueue(Task::new(args)).await?;
        }
        Ok(())
    }

    async fn push_stream(
        &mut self,
        mut stream: impl Stream<Item = Args> + Unpin + Send,
    ) -> Result<(), TaskSinkError<JournalError>> {
        while let Some(args) = stream.next().await {
            self.enqueue(Task::new(args)).await?;
        }
        Ok(())
    }

    async fn push_task(&mut self, task: Task<Args>) -> Result<(), TaskSinkError<JournalError>> {
        self.enqueue(task).await
    }

    async fn push_all(
        &mut self,
        mut stream: impl Stream<Item = Task<Args>> + Unpin + Send,
    ) -> Result<(), TaskSinkError<JournalError>> {
        while let Some(task) = stream.next().await {
            self.enqueue(task).await?;
        }
        Ok(())
    }
}
