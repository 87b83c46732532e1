//! The argument types the board shows per queue: the three events, and [`ExpiryRun`] for the
//! cron, which has no message of its own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use shared::events::{OrderCompleted, OrderCreated, OrderExpired};

/// The arguments of a queue the board shows, and what a push from the board enqueues.
pub trait BoardArgs: Serialize + DeserializeOwned + Send + 'static {
    /// Whether the board shows a finished job's result among its arguments (as `outcome`).
    /// The UI has no other place for it; events keep their arguments exactly as sent.
    const OUTCOME_IN_ARGS: bool = false;
}

impl BoardArgs for OrderCreated {}

impl BoardArgs for OrderCompleted {}

impl BoardArgs for OrderExpired {}

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
    const OUTCOME_IN_ARGS: bool = true;
}
