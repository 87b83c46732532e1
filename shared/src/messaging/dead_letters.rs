//! Dead letters: listing what sits in the `<queue>_error` queues, and replaying it into its
//! queue once the cause is fixed.
//!
//! Listing takes messages without acknowledging them and closes the channel, which puts them
//! back. Replaying publishes a message to its queue, waits for the broker's confirm, and only
//! then acknowledges it in the error queue: interrupted at any point, a message is in one queue
//! or (briefly) both, never in none. A replayed message whose effect already happened is
//! harmless, because every function is idempotent.

use std::{collections::HashMap, future::Future, time::Duration};

use anyhow::Context;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    message::BasicGetMessage,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable},
};
use serde::Serialize;

use super::Topology;
use crate::events::EventType;

/// A message in an error queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The AMQP `message_id` (the journal's key), if the message had one.
    pub message_id: Option<String>,
    /// The queue it came from and is replayed into.
    pub queue: String,
    /// The error queue it sits in (`outbox` for an outbox row parked after `OUTBOX_MAX_ATTEMPTS`
    /// refusals: it never reached the broker).
    pub error_queue: String,
    /// Why RabbitMQ dead-lettered it (`rejected`, `expired`, …), or `parked`.
    pub reason: Option<String>,
    /// How many times it was dead-lettered.
    pub deaths: i64,
    /// The body, as text (lossy for non-UTF-8).
    pub body: String,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelection {
    /// The message with this `message_id`, wherever it is (or only in this event's queue).
    Id {
        /// The message id.
        message_id: String,
        /// Only look in this event's error queue.
        event: Option<EventType>,
    },
    /// Every message of this event's error queue.
    All(EventType),
}

/// Lists and replays dead letters, over its own broker connection.
pub struct DeadLetters {
    connection: Connection,
    topology: Topology,
    timeout: Duration,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters").field("topology", &self.topology).finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// Connects to the broker (declaring the topology, so every error queue exists). Each broker
    /// call after this (and connecting itself) may take at most `timeout`: a broker under a
    /// resource alarm blocks publishers, and a replay publishes.
    ///
    /// # Errors
    /// The broker is unreachable or did not answer in time.
    pub async fn connect(url: &str, topology: Topology, timeout: Duration) -> anyhow::Result<Self> {
        let connecting = async {
            let connection = Connection::connect(
                &super::connection_url(url),
                ConnectionProperties::default().with_connection_name("orderflow-dlq".into()),
            )
            .await
            .context("Failed to connect to RabbitMQ")?;
            let channel = connection.create_channel().await?;
            topology.declare(&channel).await.context("Failed to declare the queues")?;
            let _ = channel.close(200, "done".into()).await;
            anyhow::Ok(connection)
        };
        let connection = bounded(timeout, "connecting to RabbitMQ", connecting).await?;
        Ok(DeadLetters { connection, topology, timeout })
    }

    fn events(event: Option<EventType>) -> Vec<EventType> {
        event.map_or_else(|| EventType::ALL.to_vec(), |e| vec![e])
    }

    /// Up to `limit` dead letters per error queue (of one event, or all), oldest first. The
    /// messages stay where they are.
    ///
    /// # Errors
    /// Broker errors.
    pub async fn list(&self, event: Option<EventType>, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
        let mut letters = Vec::new();
        for event in Self::events(event) {
            // Unacknowledged gets go back to the queue, in order, when the channel closes.
            let channel = bounded(self.timeout, "opening a channel", self.connection.create_channel()).await?;
            let error_queue = self.topology.error_queue(event);
            for _ in 0..limit {
                let Some(message) = bounded(self.timeout, "reading", get(&channel, &error_queue)).await? else { break };
                letters.push(self.describe(event, &message));
            }
            let _ = channel.close(200, "listed".into()).await;
        }
        Ok(letters)
    }

    /// Moves the selected dead letters back to their queues. Returns what was replayed.
    ///
    /// # Errors
    /// Broker errors; everything replayed before the error stays replayed.
    pub async fn replay(&self, selection: &ReplaySelection) -> anyhow::Result<Vec<DeadLetter>> {
        let events = match selection {
            ReplaySelection::Id { event, .. } => Self::events(*event),
            ReplaySelection::All(event) => vec![*event],
        };
        let mut replayed = Vec::new();
        for event in events {
            let error_queue = self.topology.error_queue(event);
            let queue = self.topology.queue(event);
            let reader = bounded(self.timeout, "opening a channel", self.connection.create_channel()).await?;
            let writer = bounded(self.timeout, "opening a channel", self.connection.create_channel()).await?;
            bounded(self.timeout, "selecting confirms", writer.confirm_select(ConfirmSelectOptions::default())).await?;
            // Look at each message at most once: what we skip stays unacknowledged until the
            // reader closes, and what we replay is acknowledged.
            let declared = reader.queue_declare(
                error_queue.as_str().into(),
                lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            );
            let depth = bounded(self.timeout, "counting dead letters", declared).await?.message_count();
            for _ in 0..depth {
                let Some(message) = bounded(self.timeout, "reading", get(&reader, &error_queue)).await? else { break };
                let wanted = match selection {
                    ReplaySelection::All(_) => true,
                    ReplaySelection::Id { message_id, .. } => {
                        message.delivery.properties.message_id().as_ref().is_some_and(|id| id.as_str() == message_id)
                    }
                };
                if !wanted {
                    continue;
                }
                bounded(self.timeout, "replaying", publish(&writer, &queue, &message)).await?;
                let ack = reader.basic_ack(message.delivery.delivery_tag, BasicAckOptions::default());
                bounded(self.timeout, "acknowledging", ack).await?;
                tracing::info!(
                    message.id = message.delivery.properties.message_id().as_ref().map_or("-", |id| id.as_str()),
                    queue = %queue,
                    "dead letter replayed"
                );
                replayed.push(self.describe(event, &message));
                if matches!(selection, ReplaySelection::Id { .. }) {
                    break;
                }
            }
            let _ = reader.close(200, "replayed".into()).await;
            let _ = writer.close(200, "replayed".into()).await;
            if matches!(selection, ReplaySelection::Id { .. }) && !replayed.is_empty() {
                break;
            }
        }
        Ok(replayed)
    }

    fn describe(&self, event: EventType, message: &BasicGetMessage) -> DeadLetter {
        let properties = &message.delivery.properties;
        let death = properties.headers().as_ref().and_then(first_death);
        DeadLetter {
            message_id: properties.message_id().as_ref().map(ToString::to_string),
            queue: self.topology.queue(event),
            error_queue: self.topology.error_queue(event),
            reason: death.as_ref().and_then(|d| d.get("reason").cloned()),
            deaths: death.as_ref().and_then(|d| d.get("count")).and_then(|c| c.parse().ok()).unwrap_or(1),
            body: String::from_utf8_lossy(&message.delivery.data).into_owned(),
        }
    }

    /// Closes the connection (waiting for the broker at most the timeout).
    pub async fn close(self) {
        let _ = tokio::time::timeout(self.timeout, self.connection.close(200, "done".into())).await;
    }
}

/// `call`, failed with what it was `doing` when the broker has not answered within `timeout`.
async fn bounded<T, E>(timeout: Duration, doing: &str, call: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => anyhow::bail!("the broker did not answer within {timeout:?} while {doing}"),
    }
}

async fn get(channel: &Channel, queue: &str) -> anyhow::Result<Option<BasicGetMessage>> {
    channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .with_context(|| format!("Failed to read {queue}"))
}

async fn publish(channel: &Channel, queue: &str, message: &BasicGetMessage) -> anyhow::Result<()> {
    let properties: BasicProperties = message.delivery.properties.clone().with_delivery_mode(2);
    let confirmation = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
            &message.delivery.data,
            properties,
        )
        .await?
        .await?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        other => anyhow::bail!("the broker did not accept the replayed message into {queue}: {other:?}"),
    }
}

/// The first entry of RabbitMQ's `x-death` header, as strings.
fn first_death(headers: &FieldTable) -> Option<HashMap<String, String>> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else { return None };
    let AMQPValue::FieldTable(death) = deaths.as_slice().first()? else { return None };
    Some(
        death
            .inner()
            .iter()
            .filter_map(|(key, value)| {
                let text = match value {
                    AMQPValue::LongString(s) => s.to_string(),
                    AMQPValue::ShortString(s) => s.to_string(),
                    AMQPValue::LongLongInt(n) => n.to_string(),
                    AMQPValue::LongInt(n) => n.to_string(),
                    _ => return None,
                };
                Some((key.to_string(), text))
            })
            .collect(),
    )
}
