//! The outbox relay: publishes unsent outbox rows with confirms and marks them sent.
//!
//! - Batches: lease up to `batch_size` rows ([`outbox::claim`]: one committed statement, so no
//!   row lock or transaction is held while the broker is talked to, and several relays in
//!   several processes never publish the same row concurrently), publish them all, await the
//!   confirms together, mark the confirmed ones sent. Every broker call has a timeout, so a
//!   broker under a resource alarm fails the batch instead of hanging it; shutdown abandons a
//!   batch in flight and hands its rows back.
//! - Wakes at once when this process commits outbox rows ([`OutboxSignal`]), and polls on a
//!   short timer for rows other processes wrote.
//! - Never loses or stalls a row: when the broker or the database is down (or blocked) the batch
//!   stays unsent, the error is recorded, and the relay retries with capped, jittered backoff
//!   until it drains the backlog. A row the broker refuses on its own (unroutable, nacked)
//!   waits with its own backoff while the rows behind it go on, and after `max_rejections`
//!   refusals it is parked: out of the batches, counted, and listed and replayable as a dead
//!   letter.
//! - A row published but not marked (the process died between confirm and commit) is published
//!   again: delivery is at-least-once and every function is idempotent.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Publisher, publisher::OutgoingMessage};
use crate::{backoff::reconnect_backoff, db::outbox, events::EventType, metrics::Metrics};

/// Wakes the relay after a commit that wrote outbox rows. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Tells the relay there is something to publish. A signal sent while the relay is busy is
    /// kept, so none is missed.
    pub fn notify(&self) {
        self.0.notify_one();
    }

    async fn notified(&self) {
        self.0.notified().await;
    }
}

/// How the relay works.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Most rows published in one batch.
    pub batch_size: i64,
    /// How often to look for rows written by other processes.
    pub poll_interval: Duration,
    /// Refusals of one row by the broker (`OUTBOX_MAX_ATTEMPTS`) after which it is parked.
    pub max_rejections: i32,
}

/// The first wait of a refused row before its next attempt; it doubles with each refusal.
const REJECTION_BACKOFF: Duration = Duration::from_secs(1);

/// How long a batch in flight at shutdown may still take: plenty for a broker that answers (a
/// batch takes milliseconds), short enough that a blocked one cannot hold the process.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Moves outbox rows to RabbitMQ.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    publisher: Arc<Publisher>,
    signal: OutboxSignal,
    metrics: Arc<Metrics>,
    settings: RelaySettings,
}

impl OutboxRelay {
    /// A relay over `pool`, publishing through `publisher`, woken by `signal`.
    pub fn new(
        pool: PgPool,
        publisher: Arc<Publisher>,
        signal: OutboxSignal,
        metrics: Arc<Metrics>,
        settings: RelaySettings,
    ) -> Self {
        let settings = RelaySettings {
            batch_size: settings.batch_size.max(1),
            max_rejections: settings.max_rejections.max(1),
            ..settings
        };
        OutboxRelay { pool, publisher, signal, metrics, settings }
    }

    /// Relays until `shutdown` is cancelled; a batch in flight gets [`SHUTDOWN_GRACE`] to finish,
    /// then is abandoned and its rows handed back.
    pub async fn run(self, shutdown: CancellationToken) {
        #[cfg(feature = "bench-switches")]
        if crate::bench_switches::off("relay") {
            return shutdown.cancelled().await;
        }
        tracing::info!(
            batch_size = self.settings.batch_size,
            poll_ms = self.settings.poll_interval.as_millis(),
            "outbox relay started"
        );
        let mut backoff = reconnect_backoff();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let wait = match self.relay_batch_until(&shutdown).await {
                // A full batch: there is probably more, go again at once.
                Ok(sent) if sent as i64 >= self.settings.batch_size => {
                    backoff = reconnect_backoff();
                    continue;
                }
                Ok(_) => {
                    backoff = reconnect_backoff();
                    None
                }
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis(), "outbox relay could not publish; will retry");
                    Some(delay)
                }
            };
            match wait {
                None => tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.signal.notified() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                },
                Some(delay) => tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                },
            }
        }
        self.publisher.close().await;
        tracing::info!("outbox relay stopped");
    }

    /// Publishes one batch of unsent rows. Returns how many rows it handled: published, or
    /// refused by the broker and put back (or parked).
    ///
    /// # Errors
    /// The database or broker failed; unpublished rows stay unsent with the error recorded.
    pub async fn relay_batch(&self) -> anyhow::Result<usize> {
        self.relay_batch_until(&CancellationToken::new()).await
    }

    /// How long a claimed batch stays leased: longer than its broker calls can take (connecting,
    /// sending, confirming, each bounded by the publisher's timeout), so a live relay never
    /// loses its batch to another; short enough that a dead relay's rows are taken over soon.
    fn lease(&self) -> Duration {
        self.publisher.timeout() * 3 + Duration::from_secs(10)
    }

    async fn relay_batch_until(&self, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        let (lease, claimed) = outbox::claim(&self.pool, self.settings.batch_size, self.lease())
            .await
            .context("Failed to claim outbox rows")?;
        if claimed.is_empty() {
            // Stay connected while idle, so readiness reports the broker and an outage is
            // noticed within one poll interval rather than at the next order.
            if !self.publisher.is_connected() {
                self.publisher.connect().await.context("Failed to connect to RabbitMQ")?;
            }
            return Ok(0);
        }
        // A row of an event type this version does not know (a newer orderflow wrote it) is
        // refused on its own, like an unroutable one, so it cannot hold up the rest.
        let mut refused: Vec<(String, Vec<i64>)> = Vec::new();
        let mut batch = Vec::with_capacity(claimed.len());
        let mut events = Vec::with_capacity(claimed.len());
        for row in claimed {
            match row.event_type.parse::<EventType>() {
                Ok(event) => {
                    events.push(event);
                    batch.push(row);
                }
                Err(e) => refuse(&mut refused, e, row.id),
            }
        }
        let topology = self.publisher.topology();
        let all_ids: Vec<i64> = batch.iter().map(|row| row.id).collect();
        let queues: Vec<String> = events.iter().map(|event| topology.queue(*event)).collect();
        let message_ids: Vec<String> = batch.iter().map(|row| row.message_id.to_string()).collect();
        let messages: Vec<OutgoingMessage<'_>> = batch
            .iter()
            .zip(&queues)
            .zip(&message_ids)
            .map(|((row, queue), message_id)| OutgoingMessage {
                queue,
                message_id,
                correlation_id: &row.correlation_id,
                kind: &row.event_type,
                timestamp: u64::try_from(row.created_at.timestamp()).unwrap_or_default(),
                body: row.payload.as_bytes(),
                trace: (row.traceparent.as_deref(), row.tracestate.as_deref()),
            })
            .collect();

        let started = Utc::now();
        let outcome = {
            let publishing =
                async { if messages.is_empty() { Ok(Vec::new()) } else { self.publisher.publish(&messages).await } };
            tokio::pin!(publishing);
            tokio::select! {
                outcome = &mut publishing => outcome,
                () = shutdown.cancelled() => match tokio::time::timeout(SHUTDOWN_GRACE, &mut publishing).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        // What was sent unconfirmed may still arrive; the rows are published
                        // again later, and every function is idempotent.
                        outbox::release(&self.pool, &all_ids, lease).await.context("Failed to hand outbox rows back")?;
                        tracing::info!(rows = all_ids.len(), "outbox batch abandoned at shutdown; its rows go out later");
                        return Ok(0);
                    }
                },
            }
        };
        let results = match outcome {
            Ok(results) => results,
            Err(e) => {
                self.metrics.outbox_publish_failures.inc_by(all_ids.len() as u64);
                outbox::record_failure(&self.pool, &all_ids, &e.to_string(), lease)
                    .await
                    .context("Failed to record a publish failure")?;
                self.record_refusals(refused, lease).await?;
                return Err(e).context(format!("Failed to publish {} outbox rows", batch.len()));
            }
        };
        // Once marked sent, a row is a Pending job on the board until its worker reports on it
        // (the view `unstarted_jobs`): the journal is not written here.
        let (mut sent, mut failed) = (Vec::new(), Vec::new());
        for (row, result) in batch.iter().zip(results) {
            match result {
                Ok(()) => sent.push(row.id),
                Err(e) if e.is_refusal() => refuse(&mut refused, e, row.id),
                Err(e) => failed.push((row.id, e)),
            }
        }
        outbox::mark_sent(&self.pool, &sent, started).await.context("Failed to mark outbox rows sent")?;
        self.metrics.outbox_published.inc_by(sent.len() as u64);
        let handled = sent.len() + self.record_refusals(refused, lease).await?;
        if let Some((_, error)) = failed.first() {
            let ids: Vec<i64> = failed.iter().map(|(id, _)| *id).collect();
            self.metrics.outbox_publish_failures.inc_by(ids.len() as u64);
            outbox::record_failure(&self.pool, &ids, &error.to_string(), lease)
                .await
                .context("Failed to record a publish failure")?;
        }
        tracing::debug!(
            sent = sent.len(),
            elapsed_ms = (Utc::now() - started).num_milliseconds(),
            "outbox batch published"
        );
        match failed.into_iter().next() {
            None => Ok(handled),
            Some((_, e)) => Err(e).context("Some outbox rows were not confirmed"),
        }
    }

    /// Records the rows the broker (or this version) refused, grouped by error; parks the ones
    /// refused `max_rejections` times. Returns how many rows it recorded.
    async fn record_refusals(&self, refused: Vec<(String, Vec<i64>)>, lease: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut recorded = 0;
        for (error, ids) in refused {
            recorded += ids.len();
            self.metrics.outbox_publish_failures.inc_by(ids.len() as u64);
            let parked = outbox::record_rejection(
                &self.pool,
                &ids,
                &error,
                REJECTION_BACKOFF,
                self.settings.max_rejections,
                lease,
            )
            .await
            .context("Failed to record a refused publish")?;
            tracing::warn!(rows = ids.len(), error = %error, "outbox rows refused; they are retried later");
            for message_id in parked {
                tracing::error!(
                    message.id = %message_id,
                    error = %error,
                    refusals = self.settings.max_rejections,
                    "outbox row parked: refused every time; see `orderflow dlq list`, replay it once the cause is fixed"
                );
            }
        }
        Ok(recorded)
    }
}

/// Adds row `id`, refused with `error`, to the rows refused with the same error.
fn refuse(refused: &mut Vec<(String, Vec<i64>)>, error: impl std::fmt::Display, id: i64) {
    let error = error.to_string();
    match refused.iter_mut().find(|(known, _)| *known == error) {
        Some((_, ids)) => ids.push(id),
        None => refused.push((error, vec![id])),
    }
}
