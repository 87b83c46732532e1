//! Trigger: `OrderCreated` on `order-created-event`.
//! Effect: guarded `Pending → Processing`, wait `PAYMENT_DELAY_MS`, charge; when approved,
//! `Processing → Completed` plus an `OrderCompleted` outbox row in one statement; when declined
//! the order stays Processing ("payment pending") until it is paid or expires.
//! Twice is harmless: a duplicate event finds the order past Pending and does nothing; the
//! message that started the payment resumes it when it comes back (a retry, a redelivery after
//! a crash, a dead-letter replay), and since the gateway is idempotent per order and completion
//! is a guarded transition, the order is charged once and completed once.
//! Retries: database and gateway errors are retried with backoff; an unknown order is
//! dead-lettered at once.

use apalis::prelude::{Data, Meta};
use shared::{
    db::orders::{self, StartProcessing},
    events::OrderCreated,
    messaging::MessageInfo,
    payments::PaymentOutcome,
};
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use crate::{
    deps::FunctionDeps,
    error::{FunctionError, JobResult},
};

/// Pays for a new order.
pub async fn on_order_created(
    event: OrderCreated,
    deps: Data<FunctionDeps>,
    Meta(message): Meta<MessageInfo>,
) -> JobResult {
    pay(&event, &deps, &message).await.map_err(FunctionError::into_job_error)
}

async fn pay(event: &OrderCreated, deps: &FunctionDeps, message: &MessageInfo) -> Result<String, FunctionError> {
    let id = event.order_id;
    let message_id = message.message_id.as_deref();
    let started = deps.db(async |pool| orders::mark_processing_if_pending(pool, id, message_id).await).await?;
    match started {
        StartProcessing::Started => {}
        StartProcessing::Resume => tracing::info!(order.id = id, "resuming the payment of order {id}"),
        StartProcessing::AlreadyPast(status) => {
            tracing::info!(order.id = id, order.status = %status, "order {id} is already {status}; nothing to do");
            return Ok(format!("order {id} was already {status}; nothing to do"));
        }
        StartProcessing::NotFound => return Err(FunctionError::Permanent(format!("order {id} does not exist"))),
    }

    if !wait_for_payment(deps).await {
        tracing::warn!(
            order.id = id,
            "payment of order {id} interrupted by shutdown; its message is requeued and resumes it after the restart"
        );
        return Err(FunctionError::Interrupted("payment interrupted by shutdown"));
    }

    let outcome =
        deps.payments.charge(id, event.total).await.map_err(|e| {
            FunctionError::Transient(anyhow::Error::new(e).context(format!("Failed to charge order {id}")))
        })?;
    match outcome {
        PaymentOutcome::Approved => {
            // OrderCompleted carries this job's trace on.
            let trace = shared::telemetry::TraceHeaders::current();
            let completed = deps
                .db(async |pool| {
                    orders::complete_with_event(pool, id, Uuid::now_v7(), message.correlation_id(), trace.pair()).await
                })
                .await?;
            if completed {
                deps.outbox.notify();
                tracing::info!(order.id = id, order.total = %event.total, "order {id} completed");
                Ok(format!("order {id} paid and completed"))
            } else {
                tracing::info!(order.id = id, "order {id} was paid but is no longer Processing (expired meanwhile)");
                Ok(format!("order {id} paid but no longer Processing (expired meanwhile)"))
            }
        }
        PaymentOutcome::Declined => {
            tracing::info!(order.id = id, "payment pending for order {id}");
            Ok(format!("payment pending for order {id}; it stays Processing"))
        }
    }
}

/// Waits the payment time. On shutdown the wait goes on only if it ends within the drain
/// budget; returns `false` when it was cut short.
async fn wait_for_payment(deps: &FunctionDeps) -> bool {
    let paid_at = Instant::now() + deps.payment_delay;
    tokio::select! {
        () = sleep_until(paid_at) => true,
        () = deps.shutdown.cancelled() => {
            if paid_at <= Instant::now() + deps.drain_budget {
                sleep_until(paid_at).await;
                true
            } else {
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future the handler `_` returns, which a job holds from start to end.
    fn future_size<A, B, C, F: FnOnce(A, B, C) -> Fut, Fut>(_: &F) -> usize {
        size_of::<Fut>()
    }

    #[test]
    fn a_parked_payment_holds_no_room_for_a_query() {
        // Thousands of jobs wait in their payment at once, each holding this future. With the
        // queries inline it was 1,424 bytes (unoptimised build, rustc 1.95); with them boxed
        // while they run (`FunctionDeps::db`), 896.
        let size = future_size(&on_order_created);
        assert!(
            size <= 1024,
            "the payment job's future takes {size} bytes: does a state it waits in hold a query's, or \
             another large future inline (box it while it runs)?"
        );
    }
}
