//! Orders: creation (with its `OrderCreated` outbox row in the same statement), reads, and the
//! guarded state transitions.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Money, NewOrder, Order, OrderStatus};

/// Constraint names callers map to client errors.
pub mod constraints {
    /// `orders.user_id` names no user.
    pub const UNKNOWN_USER: &str = "orders_user_id_fkey";
    /// `orders.product_id` names no product.
    pub const UNKNOWN_PRODUCT: &str = "orders_product_id_fkey";
    /// The caller already used this `Idempotency-Key`.
    pub const IDEMPOTENCY_KEY_TAKEN: &str = "idempotency_keys_pkey";
}

/// An `Idempotency-Key` and what it guards.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKey<'a> {
    /// The authenticated caller; keys are scoped per caller.
    pub user_id: i64,
    /// The header's value.
    pub key: &'a str,
    /// A fingerprint of the request, to tell a retry from a different request reusing the key.
    pub request_fingerprint: &'a str,
}

/// What an earlier request with the same idempotency key created.
#[derive(Debug, Clone)]
pub struct IdempotentReplay {
    /// The order created then.
    pub order_id: i64,
    /// The fingerprint of that request.
    pub request_fingerprint: String,
}

/// Inserts the order, its `OrderCreated` outbox row and, if given, its idempotency key, in one
/// statement: one round trip, atomic by construction. The event payload is built from the
/// inserted row, so it carries the order's real id and total.
///
/// # Errors
/// A violated constraint (see [`constraints`]) writes nothing; callers map it to a 4xx.
pub async fn insert_order(
    pool: &PgPool,
    order: &NewOrder,
    message_id: Uuid,
    correlation_id: &str,
    trace: (Option<&str>, Option<&str>),
    idempotency: Option<IdempotencyKey<'_>>,
) -> sqlx::Result<Order> {
    sqlx::query_as!(
        Order,
        r#"
        with new_order as (
            insert into orders (user_id, product_id, quantity, price, total)
            values ($1, $2, $3, $4, $5)
            returning id, user_id, product_id, quantity, price, total, status, created_at, updated_at
        ), event as (
            insert into outbox (message_id, event_type, order_id, payload, correlation_id, traceparent, tracestate)
            select $6, 'OrderCreated', id,
                   json_build_object('orderId', id, 'userId', user_id, 'productId', product_id, 'total', total),
                   $7, $11, $12
            from new_order
        ), key as (
            insert into idempotency_keys (user_id, key, request_fingerprint, order_id)
            select $8, $9, $10, id from new_order where $9::text is not null
        )
        select id as "id!", user_id as "user_id!", product_id as "product_id!", quantity as "quantity!",
               price as "price!: Money", total as "total!: Money", status as "status!: OrderStatus",
               created_at as "created_at!", updated_at as "updated_at!"
        from new_order
        "#,
        order.user_id(),
        order.product_id(),
        order.quantity(),
        order.price() as Money,
        order.total() as Money,
        message_id,
        correlation_id,
        idempotency.map(|k| k.user_id),
        idempotency.map(|k| k.key),
        idempotency.map(|k| k.request_fingerprint),
        trace.0,
        trace.1,
    )
    .fetch_one(pool)
    .await
}

/// The order an earlier request with this caller's idempotency key created within `ttl`, if
/// any. An older key no longer replays: it is deleted here (so the new request can take it)
/// rather than waiting for the retention sweep.
///
/// # Errors
/// Database errors.
pub async fn find_idempotent_replay(
    pool: &PgPool,
    user_id: i64,
    key: &str,
    ttl: std::time::Duration,
) -> sqlx::Result<Option<IdempotentReplay>> {
    // The select reads the snapshot from before the delete, hence its own age filter.
    sqlx::query_as!(
        IdempotentReplay,
        r#"
        with expired as (
            delete from idempotency_keys
            where user_id = $1 and key = $2 and created_at < now() - make_interval(secs => $3)
        )
        select order_id, request_fingerprint from idempotency_keys
        where user_id = $1 and key = $2 and created_at >= now() - make_interval(secs => $3)
        "#,
        user_id,
        key,
        ttl.as_secs_f64()
    )
    .fetch_optional(pool)
    .await
}

/// One order.
///
/// # Errors
/// Database errors.
pub async fn get_order(pool: &PgPool, id: i64) -> sqlx::Result<Option<Order>> {
    sqlx::query_as!(
        Order,
        r#"
        select id, user_id, product_id, quantity, price as "price: Money", total as "total: Money",
               status as "status: OrderStatus", created_at, updated_at
        from orders where id = $1
        "#,
        id
    )
    .fetch_optional(pool)
    .await
}

/// Which orders a list shows: whose, in which status, and where the page starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFilter {
    /// Only this user's orders.
    pub owner: Option<i64>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders older than this one (a keyset cursor: ids grow with time).
    pub before_id: Option<i64>,
}

/// Up to `limit` orders, newest first, matching `filter`, after skipping `offset` of them: an
/// index walk of `offset + limit` entries at most, whatever the table's size.
///
/// # Errors
/// Database errors.
pub async fn list_orders(pool: &PgPool, filter: OrderFilter, limit: i64, offset: i64) -> sqlx::Result<Vec<Order>> {
    // `id < coalesce(…)` rather than `$5 is null or id < $5`: an index condition either way.
    sqlx::query_as!(
        Order,
        r#"
        select id, user_id, product_id, quantity, price as "price: Money", total as "total: Money",
               status as "status: OrderStatus", created_at, updated_at
        from orders
        where ($1::text is null or status = $1) and ($4::bigint is null or user_id = $4)
          and id < coalesce($5, 9223372036854775807)
        order by id desc
        limit $2 offset $3
        "#,
        filter.status.map(OrderStatus::as_str),
        limit,
        offset,
        filter.owner,
        filter.before_id
    )
    .fetch_all(pool)
    .await
}

/// How many orders match `filter` (its cursor aside), counting no further than `cap`: an index
/// walk of `cap` entries at most, never the whole table.
///
/// # Errors
/// Database errors.
pub async fn count_orders_up_to(pool: &PgPool, filter: OrderFilter, cap: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"
        select count(*) as "count!" from (
            select 1 from orders
            where ($1::text is null or status = $1) and ($2::bigint is null or user_id = $2)
            limit $3
        ) as counted
        "#,
        filter.status.map(OrderStatus::as_str),
        filter.owner,
        cap
    )
    .fetch_one(pool)
    .await
}

/// What the guarded `Pending → Processing` step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartProcessing {
    /// The order was Pending and is now Processing: go on and charge it.
    Started,
    /// The order is Processing because this same message started its payment earlier (a
    /// retry, or a redelivery after a crash or a dead-letter replay): resume the payment.
    Resume,
    /// The order exists but is past Pending, and this message did not start its payment (a
    /// duplicate, or the order is already final): nothing to do.
    AlreadyPast(OrderStatus),
    /// No order has this id.
    NotFound,
}

/// Guarded `Pending → Processing`, recording which message started the payment; says what it
/// found otherwise, in one round trip.
///
/// # Errors
/// Database errors.
pub async fn mark_processing_if_pending(
    pool: &PgPool,
    id: i64,
    message_id: Option<&str>,
) -> sqlx::Result<StartProcessing> {
    // The subselect reads the snapshot from before the update: it sees the old row.
    let row = sqlx::query!(
        r#"
        with moved as (
            update orders set status = 'Processing', updated_at = now(), processing_at = now(), payment_message_id = $2
            where id = $1 and status = 'Pending'
            returning id
        )
        select (select count(*) from moved) as "moved!",
               o.status as "status?: OrderStatus", o.payment_message_id
        from (select 1) as one left join orders o on o.id = $1
        "#,
        id,
        message_id
    )
    .fetch_one(pool)
    .await?;
    Ok(match (row.moved, row.status) {
        (1.., _) => StartProcessing::Started,
        (_, Some(OrderStatus::Processing))
            if message_id.is_some() && row.payment_message_id.as_deref() == message_id =>
        {
            StartProcessing::Resume
        }
        (_, Some(status)) => StartProcessing::AlreadyPast(status),
        (_, None) => StartProcessing::NotFound,
    })
}

/// Guarded `Processing → Completed` and its `OrderCompleted` outbox row, in one statement.
/// Returns `false` if the order was no longer Processing (e.g. it expired meanwhile): then
/// nothing is written.
///
/// # Errors
/// Database errors.
pub async fn complete_with_event(
    pool: &PgPool,
    id: i64,
    message_id: Uuid,
    correlation_id: &str,
    trace: (Option<&str>, Option<&str>),
) -> sqlx::Result<bool> {
    let completed = sqlx::query_scalar!(
        r#"
        with done as (
            update orders set status = 'Completed', updated_at = now()
            where id = $1 and status = 'Processing'
            returning id, user_id, total
        ), event as (
            insert into outbox (message_id, event_type, order_id, payload, correlation_id, traceparent, tracestate)
            select $2, 'OrderCompleted', id, json_build_object('orderId', id, 'userId', user_id, 'total', total), $3, $4, $5
            from done
        )
        select count(*) as "count!" from done
        "#,
        id,
        message_id,
        correlation_id,
        trace.0,
        trace.1,
    )
    .fetch_one(pool)
    .await?;
    Ok(completed > 0)
}

/// Guarded `Processing → Expired` for up to `limit` orders whose `updated_at` is before
/// `cutoff`, each with its `OrderExpired` outbox row, in one statement (one transaction).
/// Returns how many expired; call again until it returns less than `limit`. Rows locked by a
/// concurrent transaction (an order being completed right now) are skipped, not waited for.
///
/// # Errors
/// Database errors.
pub async fn expire_batch(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
    correlation_id: &str,
    trace: (Option<&str>, Option<&str>),
) -> sqlx::Result<i64> {
    // A batch may walk many rows: it runs under the maintenance bound, not the API's.
    let mut tx = pool.begin().await?;
    let timeout = super::MAINTENANCE_STATEMENT_TIMEOUT.as_millis().to_string();
    sqlx::query_scalar!(r#"select set_config('statement_timeout', $1, true) as "set!""#, timeout)
        .fetch_one(&mut *tx)
        .await?;
    let expired = sqlx::query_scalar!(
        r#"
        with candidates as (
            select id from orders
            where status = 'Processing' and updated_at < $1
            order by updated_at
            limit $3
            for update skip locked
        ), expired as (
            update orders o set status = 'Expired', updated_at = $2
            from candidates c
            where o.id = c.id and o.status = 'Processing'
            returning o.id, o.user_id, o.updated_at
        ), events as (
            insert into outbox (message_id, event_type, order_id, payload, correlation_id, traceparent, tracestate)
            select gen_random_uuid(), 'OrderExpired', id,
                   json_build_object('orderId', id, 'userId', user_id, 'expiredAt', updated_at), $4, $5, $6
            from expired
        )
        select count(*) as "count!" from expired
        "#,
        cutoff,
        now,
        limit,
        correlation_id,
        trace.0,
        trace.1,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(expired)
}
