//! Trigger: the `EXPIRY_SCHEDULE` cron tick.
//! Effect: every order Processing with `updated_at` older than `ORDER_TTL_SECS` becomes
//! Expired, each with its `OrderExpired` outbox row in the same statement, in batches.
//! Twice is harmless: one process claims each tick in PostgreSQL (the others record a skip),
//! a tick is skipped while an earlier run is under way (runs do not overlap), and the guarded
//! update never expires an order twice.
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
        TickOutcome::Ran(expired) => Ok(format!("{expired} orders expired")),
        TickOutcome::ClaimedElsewhere => Ok("skipped: another process ran this tick".to_owned()),
        TickOutcome::PreviousRunUnderWay => Ok("skipped: the previous run was still under way".to_owned()),
    }
}

/// What became of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// This process ran it: so many orders expired.
    Ran(i64),
    /// Another process claimed it.
    ClaimedElsewhere,
    /// A run of an earlier tick was still under way, in this process or another: runs of the
    /// expiry do not overlap (overlapping sweeps split the same work and fight over its rows).
    PreviousRunUnderWay,
}

/// How recent another process's heartbeat must be for its run to count as under way.
const ALIVE_WITHIN: std::time::Duration = shared::journal::HEARTBEAT_INTERVAL.saturating_mul(3);

/// Claims the tick scheduled at `scheduled_at` and, if this process won it and no run of an
/// earlier tick is under way, expires stale orders.
///
/// # Errors
/// Database errors (the run is recorded as failed and may be retried).
pub async fn run_tick(
    scheduled_at: DateTime<Utc>,
    deps: &FunctionDeps,
    worker: &str,
) -> Result<TickOutcome, FunctionError> {
    // Released however the run ends, error or panic included.
    let Ok(_running) = deps.expiry_run.try_lock() else {
        tracing::info!(cron.tick = %scheduled_at, "expiry tick {scheduled_at} skipped: this process's previous run is still under way");
        cron::record_skip(&deps.pool, JOB, scheduled_at, worker, "this process's previous run was still under way")
            .await?;
        return Ok(TickOutcome::PreviousRunUnderWay);
    };
    if cron::skip_if_earlier_run_elsewhere(&deps.pool, JOB, scheduled_at, worker, ALIVE_WITHIN).await? {
        tracing::info!(cron.tick = %scheduled_at, "expiry tick {scheduled_at} skipped: another process's earlier run is still under way");
        return Ok(TickOutcome::PreviousRunUnderWay);
    }
    let Some(run) = cron::claim_tick(&deps.pool, JOB, scheduled_at, worker).await? else {
        tracing::info!(cron.tick = %scheduled_at, "expiry tick {scheduled_at} already claimed by another process; skipped");
        return Ok(TickOutcome::ClaimedElsewhere);
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
    Ok(TickOutcome::Ran(expired))
}
