//! Trigger: the `EXPIRY_SCHEDULE` cron tick.
//! Effect: every order Processing with `updated_at` older than `ORDER_TTL_SECS` becomes
//! Expired, each with its `OrderExpired` outbox row in the same statement, in batches.
//! Twice is harmless: one process claims each tick in PostgreSQL (the others record a skip),
//! and the guarded update never expires an order twice.
//! Retries: a failed run is retried with backoff and may re-claim its tick.

use apalis::prelude::{Data, WorkerContext};
use apalis_cron::Tick;
use chrono::{DateTime, Utc};
use shared::db::{cron, orders};

use crate::{
    deps::FunctionDeps,
    error::{FunctionError, JobResult},
    registry::Function,
};

/// The job name runs are recorded under: the function's name, as the registry spells it.
pub const JOB: &str = Function::ExpireOrders.name();

/// Expires stale orders for one scheduled tick.
pub async fn expire_orders(tick: Tick, deps: Data<FunctionDeps>, worker: WorkerContext) -> JobResult {
    let scheduled_at = DateTime::from_timestamp(i64::try_from(tick.get_timestamp()).unwrap_or(i64::MAX), 0)
        .ok_or_else(|| {
            FunctionError::Permanent(format!("tick {} is out of range", tick.get_timestamp())).into_job_error()
        })?;
    match run_tick(scheduled_at, &deps, worker.name()).await.map_err(FunctionError::into_job_error)? {
        Some(expired) => Ok(format!("{expired} orders expired")),
        None => Ok("skipped: another process ran this tick".to_owned()),
    }
}

/// Claims the tick scheduled at `scheduled_at` and, if this process won it, expires stale
/// orders. Returns how many expired, or `None` when another process had the tick.
///
/// # Errors
/// Database errors (the run is recorded as failed and may be retried).
pub async fn run_tick(
    scheduled_at: DateTime<Utc>,
    deps: &FunctionDeps,
    worker: &str,
) -> Result<Option<i64>, FunctionError> {
    let Some(run) = cron::claim_tick(&deps.pool, JOB, scheduled_at, worker).await? else {
        tracing::info!(cron.tick = %scheduled_at, "expiry tick {scheduled_at} already claimed by another process; skipped");
        return Ok(None);
    };
    let now = deps.clock.now();
    let ttl = chrono::Duration::from_std(deps.order_ttl).map_err(|e| FunctionError::Permanent(e.to_string()))?;
    let cutoff = now - ttl;
    let correlation_id = format!("{JOB}:{}", scheduled_at.to_rfc3339());
    // The OrderExpired events carry this run's own trace.
    let trace = shared::telemetry::TraceHeaders::current();
    let mut expired = 0;
    loop {
        match orders::expire_batch(&deps.pool, cutoff, now, deps.expiry_batch_size, &correlation_id, trace.pair()).await
        {
            Ok(count) => {
                expired += count;
                if count > 0 {
                    deps.outbox.notify();
                    tracing::debug!(batch = count, total = expired, "expired a batch of orders");
                }
                if count < deps.expiry_batch_size {
                    break;
                }
            }
            Err(e) => {
                let _ = cron::fail_run(&deps.pool, run, expired, &e.to_string()).await;
                return Err(e.into());
            }
        }
    }
    cron::finish_run(&deps.pool, run, expired).await?;
    tracing::info!(cron.tick = %scheduled_at, orders.expired = expired, "expiry run done: {expired} orders expired");
    Ok(Some(expired))
}
