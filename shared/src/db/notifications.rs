//! Notifications: what the completion and expiry functions record, once per order and type.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::PgPool;

use crate::domain::{Money, OrderStatus};

/// The kinds of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum NotificationType {
    /// The order was paid.
    OrderCompleted,
    /// The order expired.
    OrderExpired,
}

impl NotificationType {
    /// The type as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::OrderCompleted => "OrderCompleted",
            NotificationType::OrderExpired => "OrderExpired",
        }
    }
}

impl FromStr for NotificationType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "OrderCompleted" => Ok(NotificationType::OrderCompleted),
            "OrderExpired" => Ok(NotificationType::OrderExpired),
            other => Err(format!("`{other}` is not a notification type (OrderCompleted, OrderExpired)")),
        }
    }
}

/// A notification as the API returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Database id.
    pub id: i64,
    /// The order it is about.
    pub order_id: i64,
    /// What happened: `OrderCompleted` or `OrderExpired`.
    #[serde(rename = "type")]
    #[schema(example = "OrderCompleted")]
    pub kind: String,
    /// A human-readable line.
    pub message: String,
    /// Details: `userId` and `total` or `expiredAt`. Kept as the stored JSON text, so money
    /// keeps its two decimals.
    #[schema(value_type = Object, example = json!({"userId": 1, "total": 29.97}))]
    pub metadata: Box<RawValue>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// Most notifications one list returns.
pub const LIST_LIMIT: i64 = 1000;

/// Notifications, oldest first, optionally of one user's orders (`owner`), of one order and/or
/// of one type; at most [`LIST_LIMIT`].
///
/// # Errors
/// Database errors.
pub async fn list_notifications(
    pool: &PgPool,
    owner: Option<i64>,
    order_id: Option<i64>,
    kind: Option<NotificationType>,
) -> sqlx::Result<Vec<Notification>> {
    let rows = sqlx::query!(
        r#"
        select id, order_id, type as kind, message, metadata::text as "metadata!", created_at
        from notifications
        where ($1::bigint is null or order_id = $1) and ($2::text is null or type = $2)
          and ($4::bigint is null or order_id in (select id from orders where user_id = $4))
        order by id
        limit $3
        "#,
        order_id,
        kind.map(NotificationType::as_str),
        LIST_LIMIT,
        owner
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Notification {
                id: row.id,
                order_id: row.order_id,
                kind: row.kind,
                message: row.message,
                metadata: RawValue::from_string(row.metadata).map_err(|e| sqlx::Error::Decode(e.into()))?,
                created_at: row.created_at,
            })
        })
        .collect()
}

/// What recording a notification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The notification was written now (the first delivery): do the side effect (the e-mail).
    Inserted {
        /// The order's user.
        user_id: i64,
        /// The order's total.
        total: Money,
    },
    /// It already existed: a redelivery, nothing to do.
    Duplicate,
    /// The order is not in the state the notification reports (or does not exist): the event
    /// is wrong, and retrying will not fix it.
    StateMismatch(Option<OrderStatus>),
}

/// Records the `OrderCompleted` notification of a Completed order, once: metadata
/// `{userId, total}` taken from the order row.
///
/// # Errors
/// Database errors.
pub async fn record_completed(pool: &PgPool, order_id: i64) -> sqlx::Result<Recorded> {
    let row = sqlx::query!(
        r#"
        with inserted as (
            insert into notifications (order_id, type, message, metadata)
            select id, 'OrderCompleted', format('Order %s completed: total %s', id, total),
                   jsonb_build_object('userId', user_id, 'total', total)
            from orders where id = $1 and status = 'Completed'
            on conflict (order_id, type) do nothing
            returning order_id
        )
        select (select count(*) from inserted) as "inserted!",
               o.status as "status?: OrderStatus", o.user_id as "user_id?", o.total as "total?: Money"
        from (select 1) as one left join orders o on o.id = $1
        "#,
        order_id
    )
    .fetch_one(pool)
    .await?;
    Ok(classify(row.inserted, row.status, OrderStatus::Completed, row.user_id, row.total))
}

/// Records the `OrderExpired` notification of an Expired order, once: metadata
/// `{userId, expiredAt}`, `expiredAt` being when the sweep expired it.
///
/// # Errors
/// Database errors.
pub async fn record_expired(pool: &PgPool, order_id: i64) -> sqlx::Result<Recorded> {
    let row = sqlx::query!(
        r#"
        with inserted as (
            insert into notifications (order_id, type, message, metadata)
            select id, 'OrderExpired', format('Order %s expired unpaid', id),
                   jsonb_build_object('userId', user_id, 'expiredAt', updated_at)
            from orders where id = $1 and status = 'Expired'
            on conflict (order_id, type) do nothing
            returning order_id
        )
        select (select count(*) from inserted) as "inserted!",
               o.status as "status?: OrderStatus", o.user_id as "user_id?", o.total as "total?: Money"
        from (select 1) as one left join orders o on o.id = $1
        "#,
        order_id
    )
    .fetch_one(pool)
    .await?;
    Ok(classify(row.inserted, row.status, OrderStatus::Expired, row.user_id, row.total))
}

fn classify(
    inserted: i64,
    status: Option<OrderStatus>,
    expected: OrderStatus,
    user_id: Option<i64>,
    total: Option<Money>,
) -> Recorded {
    match (inserted, status, user_id, total) {
        (1.., _, Some(user_id), Some(total)) => Recorded::Inserted { user_id, total },
        (_, Some(status), _, _) if status == expected => Recorded::Duplicate,
        (_, status, _, _) => Recorded::StateMismatch(status),
    }
}
