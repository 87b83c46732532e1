//! The events orderflow publishes, past tense, and the queue each one travels on (DESIGN.md
//! section 5). On the wire an event is the plain JSON of its struct, the format apalis-amqp
//! consumers decode.
//!
//! Across versions (a rolling upgrade runs old and new processes side by side), readers are
//! tolerant: unknown fields are ignored and fields added later are optional with a default, so
//! adding a field is a compatible change. Every message carries [`SCHEMA_VERSION`] in the
//! [`SCHEMA_VERSION_HEADER`] header; an incompatible change (a field removed, renamed, retyped
//! or given a new meaning) raises it, and a worker dead-letters a message whose version is
//! newer than its own rather than half-apply it. A message without the header (a foreign
//! producer, an older orderflow) counts as the current version.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::domain::Money;

/// The schema version of the events this build writes and understands. Raise it only for an
/// incompatible change (see the module docs).
pub const SCHEMA_VERSION: u32 = 1;

/// The AMQP header that carries a message's schema version. apalis-amqp hands a consumer only
/// the headers named `x-apalis-*` (prefix removed), hence the prefix (DESIGN.md section 9).
pub const SCHEMA_VERSION_HEADER: &str = "x-apalis-schema-version";

/// [`SCHEMA_VERSION_HEADER`] as a consumer's task metadata names it.
pub const SCHEMA_VERSION_METADATA: &str = "schema-version";

/// Why a message's schema version rules it out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaVersionError {
    /// Written by a newer orderflow, in a shape this worker may misread.
    #[error(
        "schema version {0} is newer than this worker understands ({SCHEMA_VERSION}); replay it once the workers are upgraded"
    )]
    Newer(u32),
    /// Not a version number.
    #[error("unreadable schema version `{0}`")]
    Unreadable(String),
}

/// Whether a message with schema version header `header` (`None`: no header, which counts
/// as the current version) can be applied by this build.
///
/// # Errors
/// The version is newer than [`SCHEMA_VERSION`], or not a number.
pub fn check_schema_version(header: Option<&str>) -> Result<(), SchemaVersionError> {
    let Some(header) = header else { return Ok(()) };
    match header.trim().parse::<u32>() {
        Ok(version) if version > SCHEMA_VERSION => Err(SchemaVersionError::Newer(version)),
        Ok(_) => Ok(()),
        Err(_) => Err(SchemaVersionError::Unreadable(header.chars().take(64).collect())),
    }
}

/// An order was created; the payment function reacts to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    /// The new order.
    pub order_id: i64,
    /// Who ordered.
    pub user_id: i64,
    /// What was ordered.
    pub product_id: i64,
    /// What it costs.
    pub total: Money,
}

/// An order was paid; the completion function e-mails and records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCompleted {
    /// The paid order.
    pub order_id: i64,
    /// Who ordered.
    pub user_id: i64,
    /// What was paid.
    pub total: Money,
}

/// An order stayed Processing past its TTL and was expired; the expiry audit records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderExpired {
    /// The expired order.
    pub order_id: i64,
    /// Who ordered.
    pub user_id: i64,
    /// When the sweep expired it. Optional on the wire: the order row holds it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<DateTime<Utc>>,
}

/// The kinds of event, as stored in the outbox's `event_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// [`OrderCreated`].
    OrderCreated,
    /// [`OrderCompleted`].
    OrderCompleted,
    /// [`OrderExpired`].
    OrderExpired,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 3] = [EventType::OrderCreated, EventType::OrderCompleted, EventType::OrderExpired];

    /// The name stored in the outbox and sent as the AMQP `type` property.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "OrderCreated",
            EventType::OrderCompleted => "OrderCompleted",
            EventType::OrderExpired => "OrderExpired",
        }
    }

    /// The queue this event travels on, before any `QUEUE_PREFIX`.
    pub fn queue(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order-created-event",
            EventType::OrderCompleted => "order-completed-event",
            EventType::OrderExpired => "order-expired-event",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("`{s}` is not an event type"))
    }
}

/// An event struct and its type tag.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Which event this is.
    const TYPE: EventType;

    /// The order the event is about.
    fn order_id(&self) -> i64;
}

impl Event for OrderCreated {
    const TYPE: EventType = EventType::OrderCreated;

    fn order_id(&self) -> i64 {
        self.order_id
    }
}

impl Event for OrderCompleted {
    const TYPE: EventType = EventType::OrderCompleted;

    fn order_id(&self) -> i64 {
        self.order_id
    }
}

impl Event for OrderExpired {
    const TYPE: EventType = EventType::OrderExpired;

    fn order_id(&self) -> i64 {
        self.order_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_camel_case_json_with_exact_totals() {
        let event = OrderCompleted { order_id: 7, user_id: 1, total: "25.5".parse().unwrap() };
        assert_eq!(serde_json::to_string(&event).unwrap(), r#"{"orderId":7,"userId":1,"total":25.50}"#);
        let back: OrderCompleted = serde_json::from_slice(br#"{"orderId":7,"userId":1,"total":25.50}"#).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn an_event_missing_a_required_field_does_not_decode() {
        assert!(serde_json::from_str::<OrderCreated>(r#"{"orderId":1}"#).is_err());
        assert!(serde_json::from_str::<OrderCompleted>(r#"{"orderId":1,"userId":"one","total":1}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored_and_optional_fields_may_be_missing() {
        let created: OrderCreated =
            serde_json::from_str(r#"{"orderId":1,"userId":2,"productId":3,"total":4.00,"coupon":{"code":"X"}}"#)
                .unwrap();
        assert_eq!(created.order_id, 1);
        let expired: OrderExpired = serde_json::from_str(r#"{"orderId":1,"userId":2}"#).unwrap();
        assert_eq!(expired.expired_at, None);
    }

    #[test]
    fn only_a_newer_or_unreadable_schema_version_is_refused() {
        assert_eq!(check_schema_version(None), Ok(()));
        assert_eq!(check_schema_version(Some("1")), Ok(()));
        assert_eq!(check_schema_version(Some("0")), Ok(()));
        assert_eq!(check_schema_version(Some("2")), Err(SchemaVersionError::Newer(2)));
        assert!(matches!(check_schema_version(Some("v2")), Err(SchemaVersionError::Unreadable(_))));
    }

    #[test]
    fn every_event_type_has_its_own_queue() {
        let queues: std::collections::HashSet<_> = EventType::ALL.iter().map(|t| t.queue()).collect();
        assert_eq!(queues.len(), EventType::ALL.len());
    }
}
