//! `JournalBackend<Args>`: the job journal as an apalis backend, so apalis-board can list and
//! show every job. apalis-board only lists backends implementing apalis-core's `Metrics`,
//! `ListWorkers`, `ListQueues`, `ListTasks`, `ListAllTasks`, `FetchById` and `TaskSink`; the
//! AMQP backend implements none, so the board reads the journal instead (through
//! `shared::db::board`). It is never given to a worker: the workers consume RabbitMQ and write
//! the journal. A push from the board goes through the outbox, like any event.

use std::{
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use apalis_core::{
    backend::{
        Backend, BackendConfig, FetchById, Filter, ListAllTasks, ListQueues, ListTasks, ListWorkers, Metrics,
        QueueInfo, RunningWorker, Statistic, TaskSink, TaskSinkError, WireFormatBackend,
    },
    layers::Identity,
    task::{Task, task_id::TaskId},
    worker::context::WorkerContext,
};
use futures::{Stream, StreamExt};
use serde_json::Value;
use shared::{
    db::{
        self,
        board::Unstarted,
        outbox::{BoardPush, insert_board_push},
    },
    journal::HEARTBEAT_INTERVAL,
    messaging::OutboxSignal,
};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    args::BoardArgs,
    stats::{CronQueue, job_stats},
    task::{JsonValueCodec, into_task, unix},
};
use crate::registry::Function;

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
    /// The cron function's queue, whose statistics include its schedule and last run.
    pub cron: Arc<CronQueue>,
    /// How published jobs no worker has started yet are named, on every queue.
    pub unstarted: Arc<Unstarted>,
}

/// One queue of the journal, for apalis-board.
pub struct JournalBackend<Args> {
    pool: PgPool,
    outbox: OutboxSignal,
    function: Function,
    config: JournalConfig,
    codec: JsonValueCodec,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> Clone for JournalBackend<Args> {
    fn clone(&self) -> Self {
        JournalBackend {
            pool: self.pool.clone(),
            outbox: self.outbox.clone(),
            function: self.function,
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
    /// The journal of `function`'s queue, as `config` describes it. A push writes an outbox row
    /// and wakes the relay through `outbox`.
    pub fn new(pool: PgPool, outbox: OutboxSignal, function: Function, config: JournalConfig) -> Self {
        JournalBackend { pool, outbox, function, config, codec: JsonValueCodec, _args: PhantomData }
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
        let unstarted = self.config.unstarted.on(queue);
        let rows = db::board::jobs(&self.pool, queue, status.as_deref(), &unstarted, limit, offset).await?;
        rows.into_iter().map(|row| into_task(row, Args::OUTCOME_IN_ARGS)).collect()
    }

    /// A queue's statistics (see `stats.rs`), or every queue's together; the cron's queue also
    /// shows its schedule and last run.
    async fn stats(&self, queue: Option<&str>) -> Result<Vec<Statistic>, JournalError> {
        let unstarted = self.config.unstarted.on(queue);
        let mut stats = job_stats(&db::board::job_counts(&self.pool, queue, &unstarted).await?);
        if queue == Some(self.config.cron.queue.as_str()) {
            stats.extend(self.config.cron.stats(&self.pool).await?);
        }
        Ok(stats)
    }

    async fn workers(&self, queue: Option<&str>) -> Result<Vec<RunningWorker>, JournalError> {
        let silent_for = chrono::Duration::from_std(HEARTBEAT_INTERVAL * 3).unwrap_or_default();
        let rows = db::board::live_workers(&self.pool, queue, silent_for).await?;
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
        let queue = &self.config.queue;
        let unstarted = self.config.unstarted.on(Some(queue));
        let row = db::board::job(&self.pool, &task_id.to_string(), queue, &unstarted).await?;
        row.map(|row| into_task(row, Args::OUTCOME_IN_ARGS)).transpose()
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
        let journaled = db::board::journaled_queues(&self.pool).await?;
        for queue in journaled {
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        let mut infos = Vec::with_capacity(queues.len());
        for name in queues {
            let activity = db::board::daily_jobs(&self.pool, &name, &self.config.unstarted.on(Some(&name))).await?;
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
        let Some(event) = self.function.trigger() else {
            return Err(TaskSinkError::PushError(JournalError::Unsupported("cron runs are scheduled, not pushed")));
        };
        let payload = serde_json::to_string(&task.args).map_err(|e| TaskSinkError::CodecError(e.into()))?;
        let message_id =
            task.task_id().and_then(|id| Uuid::parse_str(&id.to_string()).ok()).unwrap_or_else(Uuid::now_v7);
        let order_id =
            serde_json::from_str::<Value>(&payload).ok().and_then(|v| v.get("orderId").and_then(Value::as_i64));
        let push = BoardPush {
            message_id,
            event_type: event.as_str(),
            order_id,
            payload: &payload,
            queue: &self.config.queue,
            function: self.function.name(),
            max_attempts: i32::try_from(task.max_attempts().unwrap_or(1)).unwrap_or(1),
        };
        insert_board_push(&self.pool, &push).await.map_err(|e| TaskSinkError::PushError(e.into()))?;
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
