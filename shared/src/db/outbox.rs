//! The transactional outbox: rows written with the state change that caused them, leased by
//! the relay ([`claim`]) so several relays never publish a row concurrently and none holds a
//! lock while it talks to the broker; rows the broker keeps refusing are parked.
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
//! No other code inserts into `outbox` (tests aside); the relay only claims and marks rows, and
//! retention ([`super::retention`]) deletes sent ones.

use chrono::{DateTime, SubsecRound, Utc};
use std::time::Duration;

use sqlx::PgPool;
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
    /// The W3C `traceparent` of the request or job that wrote it.
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that came with it.
    pub tracestate: Option<String>,
}

/// Claims up to `limit` unsent, unparked rows whose turn has come, oldest first, by leasing
/// them for `lease`: the statement commits at once, so no row lock or transaction is held while
/// the caller talks to the broker. Another relay skips leased rows, and takes one over only
/// once its lease ran out (its relay died or hung), which at worst publishes it twice: delivery
/// is at-least-once and every function is idempotent.
///
/// Returns the lease's end, which names this claim: [`release`], [`record_failure`] and
/// [`record_rejection`] touch only rows still under it, never rows another relay took over.
///
/// # Errors
/// Database errors.
pub async fn claim(pool: &PgPool, limit: i64, lease: Duration) -> sqlx::Result<(DateTime<Utc>, Vec<OutboxMessage>)> {
    // Microseconds, as PostgreSQL stores it, so the value compares equal when it comes back.
    let until = (Utc::now() + lease).trunc_subsecs(6);
    let mut rows = sqlx::query_as!(
        OutboxMessage,
        r#"
        with claimed as (
            select id from outbox
            where sent_at is null and parked_at is null and available_at <= now()
            order by id
            limit $1
            for update skip locked
        )
        update outbox set available_at = $2
        from claimed
        where outbox.id = claimed.id
        returning outbox.id, outbox.message_id, outbox.event_type, outbox.order_id,
            outbox.payload::text as "payload!", outbox.correlation_id, outbox.created_at,
            outbox.traceparent, outbox.tracestate
        "#,
        limit,
        until,
    )
    .fetch_all(pool)
    .await?;
    rows.sort_unstable_by_key(|row| row.id);
    Ok((until, rows))
}

/// Marks rows published (their confirms arrived), as of `published_at`: when publishing began,
/// which is before a consumer can have started on them (an order's timeline reads it so).
///
/// # Errors
/// Database errors.
pub async fn mark_sent(pool: &PgPool, ids: &[i64], published_at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!("update outbox set sent_at = $2, attempts = attempts + 1 where id = any($1)", ids, published_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends the lease `lease` of rows that were claimed but not published (shutdown came first), so
/// the next relay takes them at once.
///
/// # Errors
/// Database errors.
pub async fn release(pool: &PgPool, ids: &[i64], lease: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "update outbox set available_at = now() where id = any($1) and sent_at is null and available_at = $2",
        ids,
        lease
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt of a whole batch under lease `lease` (the broker unreachable,
/// blocked or too slow): the rows stay unsent and are available again at once (the relay backs
/// off itself). Such a failure says nothing about the rows, so it never parks one.
///
/// # Errors
/// Database errors.
pub async fn record_failure(pool: &PgPool, ids: &[i64], error: &str, lease: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "update outbox set attempts = attempts + 1, last_error = $2, available_at = now()
         where id = any($1) and sent_at is null and available_at = $3",
        ids,
        error,
        lease
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that the broker refused these rows of lease `lease` themselves (unroutable, nacked),
/// or this version did (an event type it does not know), while others went out. Each waits
/// before its next attempt (`retry_in`, doubling with each refusal, at most five minutes), so it
/// never holds up the rows behind it; after `max_rejections` it is parked. Returns the message
/// ids of the rows parked now.
///
/// # Errors
/// Database errors.
pub async fn record_rejection(
    pool: &PgPool,
    ids: &[i64],
    error: &str,
    retry_in: Duration,
    max_rejections: i32,
    lease: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"
        update outbox
        set attempts = attempts + 1, rejections = rejections + 1, last_error = $2,
            available_at = now() + make_interval(secs => least($3 * power(2, rejections), 300)),
            parked_at = case when rejections + 1 >= $4 then now() end
        where id = any($1) and sent_at is null and available_at = $5
        returning case when parked_at is not null then message_id end as "message_id?"
        "#,
        ids,
        error,
        retry_in.as_secs_f64(),
        max_rejections,
        lease,
    )
    .fetch_all(pool)
    .await
    .map(|ids| ids.into_iter().flatten().collect())
}

/// A parked row: refused by the broker `OUTBOX_MAX_ATTEMPTS` times, out of the relay's work
/// list until it is replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRow {
    /// The AMQP `message_id` it will be published with.
    pub message_id: Uuid,
    /// Which event (decides the queue).
    pub event_type: String,
    /// The event's JSON.
    pub payload: String,
    /// Publish attempts, failed ones included.
    pub attempts: i32,
    /// The broker's last refusal.
    pub last_error: Option<String>,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// Up to `limit` parked rows, of one event type or all, oldest first.
///
/// # Errors
/// Database errors.
pub async fn parked(pool: &PgPool, event_type: Option<&str>, limit: i64) -> sqlx::Result<Vec<ParkedRow>> {
    sqlx::query_as!(
        ParkedRow,
        r#"
        select message_id, event_type, payload::text as "payload!", attempts, last_error,
            parked_at as "parked_at!"
        from outbox
        where parked_at is not null and sent_at is null and ($1::text is null or event_type = $1)
        order by id
        limit $2
        "#,
        event_type,
        limit,
    )
    .fetch_all(pool)
    .await
}

/// Puts parked rows back in the relay's work list with a fresh count of rejections: the one
/// with `message_id`, or every parked row (of one event type, or all). Returns the rows as they
/// were before.
///
/// # Errors
/// Database errors.
pub async fn unpark(pool: &PgPool, message_id: Option<Uuid>, event_type: Option<&str>) -> sqlx::Result<Vec<ParkedRow>> {
    sqlx::query_as!(
        ParkedRow,
        r#"
        with unparked as (
            select id, parked_at from outbox
            where parked_at is not null and sent_at is null
                and ($1::uuid is null or message_id = $1)
                and ($2::text is null or event_type = $2)
            for update
        )
        update outbox set parked_at = null, rejections = 0, available_at = now()
        from unparked
        where outbox.id = unparked.id
        returning outbox.message_id, outbox.event_type, outbox.payload::text as "payload!", outbox.attempts,
            outbox.last_error, unparked.parked_at as "parked_at!"
        "#,
        message_id,
        event_type,
    )
    .fetch_all(pool)
    .await
}

/// How far behind the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Unsent rows the relay works on (parked ones not counted).
    pub unsent: i64,
    /// When the oldest of them was written.
    pub oldest_unsent_at: Option<DateTime<Utc>>,
    /// Parked rows, waiting for a replay.
    pub parked: i64,
}

/// The outbox backlog.
///
/// # Errors
/// Database errors.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<Backlog> {
    sqlx::query_as!(
        Backlog,
        r#"
        select
            (select count(*) from outbox where sent_at is null and parked_at is null) as "unsent!",
            (select min(created_at) from outbox where sent_at is null and parked_at is null) as oldest_unsent_at,
            (select count(*) from outbox where parked_at is not null and sent_at is null) as "parked!"
        "#
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
