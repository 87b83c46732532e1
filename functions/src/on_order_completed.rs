//! Trigger: `OrderCompleted` on `order-completed-event`.
//! Effect: records the `OrderCompleted` notification (metadata `{userId, total}`) and, the
//! first time only, "sends" the confirmation e-mail (one log line).
//! Twice is harmless: `unique (order_id, type)`; a duplicate insert is a no-op and sends nothing.
//! Retries: database errors are retried with backoff; an order that is not Completed is
//! dead-lettered at once.

use apalis::prelude::Data;
use shared::{
    db::notifications::{self, Recorded},
    events::OrderCompleted,
};

use crate::{
    deps::FunctionDeps,
    error::{FunctionError, JobResult},
};

/// Notifies that an order was paid.
pub async fn on_order_completed(event: OrderCompleted, deps: Data<FunctionDeps>) -> JobResult {
    notify(&event, &deps).await.map_err(FunctionError::into_job_error)
}

async fn notify(event: &OrderCompleted, deps: &FunctionDeps) -> Result<String, FunctionError> {
    let id = event.order_id;
    let recorded = deps.db(async |pool| notifications::record_completed(pool, id).await).await?;
    match recorded {
        Recorded::Inserted { user_id, total } => {
            // The fake e-mail: ids and the amount only, no personal data.
            tracing::info!(order.id = id, user.id = user_id, order.total = %total, "e-mail sent: order {id} confirmed, total {total}");
            Ok(format!("order {id} notified; confirmation e-mail sent"))
        }
        Recorded::Duplicate => {
            tracing::info!(order.id = id, "order {id} was already notified; nothing to do");
            Ok(format!("order {id} was already notified; nothing to do"))
        }
        Recorded::StateMismatch(status) => Err(FunctionError::Permanent(match status {
            Some(status) => format!("order {id} is {status}, not Completed"),
            None => format!("order {id} does not exist"),
        })),
    }
}
