//! An order's timeline, read from everything recorded about it: the order row, its outbox rows,
//! its jobs in the journal and its notifications. Only `GET /api/orders/{id}/events` reads it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One thing that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Where it was recorded: `order`, `outbox`, `job` or `notification`.
    pub source: String,
    /// What happened, in a few words.
    pub event: String,
    /// Details: the job's result or error, the event's message id.
    pub detail: Option<String>,
    /// The W3C trace id: on an outbox entry, of the request or job that wrote the event; on a job
    /// entry, of the job's latest attempt; on the others, none. It finds the order's trace in
    /// Jaeger, Tempo or any OpenTelemetry backend (when the trace was sampled and exported) and
    /// its lines in the JSON logs.
    pub trace_id: Option<String>,
}

/// Everything recorded about an order, in time order: its creation and state transitions, the
/// events written and published for it, the jobs that handled them (with results and errors),
/// and its notifications. Jobs are journaled as their latest attempt.
///
/// # Errors
/// Database errors.
pub async fn order_timeline(pool: &PgPool, order_id: i64) -> sqlx::Result<Vec<TimelineEntry>> {
    sqlx::query_as!(
        TimelineEntry,
        r#"
        select at as "at!", source as "source!", event as "event!", detail, trace_id
        from (
            select created_at as at, 'order' as source, 'order created (Pending)' as event,
                   format('total %s', total) as detail, null::text as trace_id, 0 as rank
            from orders where id = $1
            union all
            select processing_at, 'order', 'Pending → Processing', 'payment started by message ' || payment_message_id,
                   null, 0
            from orders where id = $1 and processing_at is not null
            union all
            select updated_at, 'order', 'Processing → ' || status, null, null, 0
            from orders where id = $1 and status in ('Completed', 'Expired')
            union all
            select created_at, 'outbox', event_type || ' written', 'message ' || message_id,
                   substring(traceparent from 4 for 32), 1
            from outbox where order_id = $1
            union all
            select sent_at, 'outbox', event_type || ' published', 'message ' || message_id,
                   substring(traceparent from 4 for 32), 2
            from outbox where order_id = $1 and sent_at is not null
            union all
            select started_at, 'job', function || ' started (attempt ' || attempts || ')', 'message ' || message_id,
                   trace_id, 3
            from job_journal where order_id = $1 and started_at is not null
            union all
            -- One row per job: a success after retries still tells what the failures were.
            select finished_at, 'job', function || ' ' || status,
                   case when status = 'Done' and attempts > 1 and last_error is not null
                        then format('%s (after %s failed attempt(s), the last: %s)', result, attempts - 1, last_error)
                        else coalesce(result, last_error) end,
                   trace_id, 4
            from job_journal where order_id = $1 and finished_at is not null
            union all
            select created_at, 'notification', type || ' notification', message, null, 5
            from notifications where order_id = $1
        ) as timeline
        order by at, rank
        "#,
        order_id
    )
    .fetch_all(pool)
    .await
}
