//! Notifications: what the completion and expiry functions record, once per order and type.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// The kinds of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl fmt::Display for NotificationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Database id.
    pub id: i64,
    /// The order it is about.
    pub order_id: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: String,
    /// A human-readable line.
    pub message: String,
    /// Details: `userId` and `total` or `expiredAt`.
    pub metadata: serde_json::Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// Most notifications one list returns.
pub const LIST_LIMIT: i64 = 1000;

/// Notifications, oldest first, optionally of one order and/or type; at most [`LIST_LIMIT`].
///
/// # Errors
/// Database errors.
pub async fn list_notifications(
    pool: &PgPool,
    order_id: Option<i64>,
    kind: Option<NotificationType>,
) -> sqlx::Result<Vec<Notification>> {
    sqlx::query_as!(
        Notification,
        r#"
        select id, order_id, type as kind, message, metadata, created_at
        from notifications
        where ($1::bigint is null or order_id = $1) and ($2::text is null or type = $2)
        order by id
        limit $3
        "#,
        order_id,
        kind.map(NotificationType::as_str),
        LIST_LIMIT
    )
    .fetch_all(pool)
    .await
}
