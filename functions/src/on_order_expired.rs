//! Trigger: `OrderExpired` on `order-expired-event`.
//! Effect: records the `OrderExpired` notification (metadata `{userId, expiredAt}`), the audit
//! trail of the expiry.
//! Twice is harmless: `unique (order_id, type)`; a duplicate insert is a no-op.
//! Retries: database errors are retried with backoff; an order that is not Expired is
//! dead-lettered at once.

use apalis::prelude::Data;
use shared::{
    db::notifications::{self, Recorded},
    events::OrderExpired,
};

use crate::{
    deps::FunctionDeps,
    error::{FunctionError, JobResult},
};

/// Records that an order expired.
pub async fn on_order_expired(event: OrderExpired, deps: Data<FunctionDeps>) -> JobResult {
    audit(&event, &deps).await.map_err(FunctionError::into_job_error)
}

async fn audit(event: &OrderExpired, deps: &FunctionDeps) -> Result<String, FunctionError> {
    let id = event.order_id;
    let recorded = deps.db(async |pool| notifications::record_expired(pool, id).await).await?;
    match recorded {
        Recorded::Inserted { user_id, .. } => {
            tracing::info!(order.id = id, user.id = user_id, "order {id} expiry recorded");
            Ok(format!("order {id} expiry recorded"))
        }
        Recorded::Duplicate => {
            tracing::info!(order.id = id, "order {id} expiry was already recorded; nothing to do");
            Ok(format!("order {id} expiry was already recorded; nothing to do"))
        }
        Recorded::StateMismatch(status) => Err(FunctionError::Permanent(match status {
            Some(status) => format!("order {id} is {status}, not Expired"),
            None => format!("order {id} does not exist"),
        })),
    }
}
