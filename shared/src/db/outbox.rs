//! The transactional outbox: rows written with the state change that caused them, claimed by
//! the relay with `for update skip locked` so several relays never publish a row concurrently.
//!
//! Where outbox rows are written:
//! - [`super::orders::insert_order`] (`OrderCreated`), [`super::orders::complete_with_event`]
//!   (`OrderCompleted`) and [`super::orders::expire_batch`] (`OrderExpired`) write theirs in
//!   the same statement as the order change, a data-modifying CTE. They stay in `orders.rs`:
//!   one statement is one round trip per order and atomic without a transaction, which is what
//!   makes the pipeline fast (DESIGN.md section 10: one CTE instead of four statements made
//!   order creation 76 % faster).
//! - [`insert_board_push`], below: a job pushed from the board, with its journal row.
//!
//! No other code inserts into `outbox` (tests aside); the relay only reads and marks rows, and
//! retention ([`super::retention`]) deletes sent ones.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An unsent outbox row, ready to publish.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// Row id.
    pub id: i64,
    /// The AMQP `message_id`: unique per event, stable across re-publishing.
    pub message_id: Uuid,
    /// Which event (decides the queue).
    pub event_type: String,
    /// The order the event is about.
    pub order_id: Option<i64>,
    /// The message body: the event's JSON.
    pub payload: String,
    /// The AMQP `correlation_id`: the id of the HTTP request that started the chain.
    pub correlation_id: String,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
}

/// Locks and returns up to `limit` unsent rows, oldest first, skipping rows another relay holds.
/// The locks last until the caller's transaction ends.
///
/// # Errors
/// Database errors.
pub async fn claim_unsent(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<OutboxMessage>> {
    sqlx::query_as!(
        OutboxMessage,
        r#"
        select id, message_id, event_type, order_id, payload::text as "payload!", correlation_id, created_at
        from outbox
        where sent_at is null
        order by id
        limit $1
        for update skip locked
        "#,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Marks rows published (their confirms arrived).
///
/// # Errors
/// Database errors.
pub async fn mark_sent(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query!("update outbox set sent_at = now(), attempts = attempts + 1 where id = any($1)", ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a failed publish attempt on rows that stay unsent.
///
/// # Errors
/// Database errors.
pub async fn record_failure(conn: &mut PgConnection, ids: &[i64], error: &str) -> sqlx::Result<()> {
    sqlx::query!("update outbox set attempts = attempts + 1, last_error = $2 where id = any($1)", ids, error)
        .execute(conn)
        .await?;
    Ok(())
}

/// How far behind the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Unsent rows.
    pub unsent: i64,
    /// When the oldest unsent row was written.
    pub oldest_unsent_at: Option<DateTime<Utc>>,
}

/// The outbox backlog.
///
/// # Errors
/// Database errors.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<Backlog> {
    sqlx::query_as!(
        Backlog,
        r#"select count(*) as "unsent!", min(created_at) as oldest_unsent_at from outbox where sent_at is null"#
    )
    .fetch_one(pool)
    .await
}

/// A job pushed from the board: published like any event, and journaled as `Pending`.
#[derive(Debug, Clone, Copy)]
pub struct BoardPush<'a> {
    /// The AMQP `message_id`, also the journal row's key.
    pub message_id: Uuid,
    /// The event type (decides the queue).
    pub event_type: &'a str,
    /// The order the event is about, if its payload names one.
    pub order_id: Option<i64>,
    /// The event's JSON.
    pub payload: &'a str,
    /// The queue the board shows the job under.
    pub queue: &'a str,
    /// The function that will run it.
    pub function: &'a str,
    /// Attempts the job may take.
    pub max_attempts: i32,
}

/// Writes a board push's outbox row and its `Pending` journal row, in one statement (the
/// correlation id is `board`). The caller wakes the relay.
///
/// # Errors
/// Database errors, e.g. a payload that is not JSON or a message id already in the outbox.
pub async fn insert_board_push(pool: &PgPool, push: &BoardPush<'_>) -> sqlx::Result<()> {
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
        push.message_id,
        push.event_type,
        push.order_id,
        push.payload,
        push.queue,
        push.function,
        push.max_attempts,
    )
    .execute(pool)
    .await?;
    Ok(())
}
