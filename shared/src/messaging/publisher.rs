//! A confirmed, persistent publisher with its own connection (publishing and consuming never
//! share one, so a slow consumer cannot stall publishing and vice versa).
//!
//! A batch is sent in one go and its confirms are awaited together: one broker round trip per
//! batch instead of one per message.
//!
//! Every broker call is bounded by the publisher's timeout (`BROKER_TIMEOUT_SECS`): connecting,
//! sending a batch, and awaiting its confirms each take at most that long. A broker under a
//! memory or disk alarm blocks publishing connections without closing them; without the bound
//! a publish would wait for the alarm to clear, however long that takes.

use std::{sync::Mutex, time::Duration};

use futures::future::join_all;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConnectionStatus,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};

use super::Topology;

/// The bound on each broker call, unless [`Publisher::with_timeout`] sets another.
pub const DEFAULT_BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// A message to publish to a queue through the default exchange.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingMessage<'a> {
    /// The queue (routing key on the default exchange).
    pub queue: &'a str,
    /// AMQP `message_id`: the identity consumers de-duplicate and journal by.
    pub message_id: &'a str,
    /// AMQP `correlation_id`: the request that started the chain.
    pub correlation_id: &'a str,
    /// AMQP `type`: the event type.
    pub kind: &'a str,
    /// AMQP `timestamp`, seconds since the epoch.
    pub timestamp: u64,
    /// The JSON body.
    pub body: &'a [u8],
    /// W3C `traceparent` and `tracestate` of the trace the message continues.
    pub trace: (Option<&'a str>, Option<&'a str>),
}

/// Why a message was not confirmed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The broker is unreachable or the connection broke.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker returned the message: no queue is bound to its routing key.
    #[error("message unroutable to `{0}`")]
    Unroutable(String),
    /// The broker refused the message (nack).
    #[error("broker nacked the message")]
    Nacked,
    /// The broker did not answer in time (connecting, sending, or confirming); a broker under a
    /// resource alarm blocks publishers like this.
    #[error("the broker did not answer within {1:?} while {0}")]
    Timeout(&'static str, Duration),
    /// The broker told this connection it blocks publishing (a memory or disk alarm); nothing
    /// was sent.
    #[error("the broker blocks publishing (a resource alarm)")]
    Blocked,
}

impl PublishError {
    /// Whether the broker refused this message itself (it took others), rather than failing or
    /// stalling as a whole: only such refusals count toward parking an outbox row.
    pub fn is_refusal(&self) -> bool {
        matches!(self, PublishError::Unroutable(_) | PublishError::Nacked)
    }
}

struct Link {
    connection: Connection,
    channel: Channel,
}

/// Publishes with confirms and `delivery_mode = 2`, reconnecting (and re-declaring the
/// topology) lazily after the connection breaks.
pub struct Publisher {
    url: String,
    topology: Topology,
    timeout: Duration,
    link: tokio::sync::Mutex<Option<Link>>,
    // A second handle on the live connection, readable without waiting for a publish in flight.
    health: Mutex<Option<ConnectionStatus>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("topology", &self.topology).finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher that connects on first use.
    pub fn new(url: impl Into<String>, topology: Topology) -> Self {
        Publisher {
            url: url.into(),
            topology,
            timeout: DEFAULT_BROKER_TIMEOUT,
            link: tokio::sync::Mutex::new(None),
            health: Mutex::new(None),
        }
    }

    /// Bounds each broker call (connecting, sending a batch, awaiting its confirms) by `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bound on each broker call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The topology messages are routed by.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether the publisher holds a live connection to the broker.
    pub fn is_connected(&self) -> bool {
        self.health.lock().expect("publisher health lock poisoned").as_ref().is_some_and(ConnectionStatus::connected)
    }

    /// Connects now if not connected (declaring the topology), so start-up can report the broker.
    ///
    /// # Errors
    /// The broker is unreachable or refused the topology.
    pub async fn connect(&self) -> Result<(), PublishError> {
        let mut link = self.link.lock().await;
        self.ensure_link(&mut link).await.map(|_| ())
    }

    async fn ensure_link<'a>(&self, link: &'a mut Option<Link>) -> Result<&'a Channel, PublishError> {
        let alive = link.as_ref().is_some_and(|l| l.connection.status().connected() && l.channel.status().connected());
        if !alive {
            *link = None;
            let connected = tokio::time::timeout(self.timeout, self.open())
                .await
                .map_err(|_| PublishError::Timeout("connecting", self.timeout))??;
            *self.health.lock().expect("publisher health lock poisoned") = Some(connected.connection.status().clone());
            tracing::info!("publisher connected to RabbitMQ");
            *link = Some(connected);
        }
        Ok(&link.as_ref().expect("link was just set").channel)
    }

    /// Connects, opens a confirming channel and declares the topology.
    async fn open(&self) -> Result<Link, PublishError> {
        let connection = Connection::connect(
            &super::connection_url(&self.url),
            ConnectionProperties::default().with_connection_name("orderflow-publisher".into()),
        )
        .await
        .map_err(unavailable)?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        self.topology.declare(&channel).await.map_err(unavailable)?;
        Ok(Link { connection, channel })
    }

    /// Publishes every message, then awaits all confirms. Returns one result per message, in
    /// order; an `Err` for the whole batch means nothing can be assumed published.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when the broker cannot be reached at all.
    pub async fn publish(
        &self,
        messages: &[OutgoingMessage<'_>],
    ) -> Result<Vec<Result<(), PublishError>>, PublishError> {
        let mut link = self.link.lock().await;
        self.ensure_link(&mut link).await?;
        let Some(Link { connection, channel }) = link.as_ref() else {
            return Err(PublishError::Unavailable("no connection".into()));
        };
        // A blocked connection would hold what we send until the alarm clears, and then deliver
        // it on top of the retry that our timeout causes: send nothing while blocked. It stays
        // open (dropping it would not free what it holds either), and says when it is unblocked.
        if connection.status().blocked() {
            return Err(PublishError::Blocked);
        }
        let sending = async {
            let mut confirms = Vec::with_capacity(messages.len());
            for message in messages {
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(message.message_id.into())
                    .with_correlation_id(message.correlation_id.into())
                    .with_type(message.kind.into())
                    .with_timestamp(message.timestamp)
                    .with_headers(headers(message.trace));
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        message.queue.into(),
                        // mandatory: an unroutable message comes back instead of vanishing.
                        BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                        message.body,
                        properties,
                    )
                    .await
                    .map_err(unavailable)?;
                confirms.push(confirm);
            }
            Ok::<_, PublishError>(confirms)
        };
        // On a timeout, a connection the broker blocked meanwhile is kept (see above); any other
        // is dropped and the next batch connects afresh.
        let confirms = match tokio::time::timeout(self.timeout, sending).await {
            Ok(Ok(confirms)) => confirms,
            Ok(Err(e)) => {
                *link = None;
                return Err(e);
            }
            Err(_) => {
                Self::drop_unless_blocked(&mut link);
                return Err(PublishError::Timeout("sending", self.timeout));
            }
        };
        let Ok(results) = tokio::time::timeout(self.timeout, join_all(confirms)).await else {
            Self::drop_unless_blocked(&mut link);
            return Err(PublishError::Timeout("awaiting confirms", self.timeout));
        };
        let mut outcome = Vec::with_capacity(results.len());
        for (message, result) in messages.iter().zip(results) {
            outcome.push(match result {
                Ok(Confirmation::Ack(None)) => Ok(()),
                Ok(Confirmation::Ack(Some(_returned))) => Err(PublishError::Unroutable(message.queue.to_owned())),
                Ok(Confirmation::Nack(_)) => Err(PublishError::Nacked),
                // Confirms are always selected on this channel; treat the impossible as a failure.
                Ok(Confirmation::NotRequested) => Err(PublishError::Nacked),
                // The connection broke with confirms pending: the whole batch failed, none of
                // its rows is to blame.
                Err(e) => {
                    *link = None;
                    return Err(unavailable(e));
                }
            });
        }
        Ok(outcome)
    }

    fn drop_unless_blocked(link: &mut Option<Link>) {
        if !link.as_ref().is_some_and(|l| l.connection.status().blocked()) {
            *link = None;
        }
    }

    /// Closes the connection, if any, waiting at most a second for the broker: a broker under a
    /// resource alarm never answers the close, and the socket closes with the process anyway.
    pub async fn close(&self) {
        const PATIENCE: Duration = Duration::from_secs(1);
        let taken = tokio::time::timeout(PATIENCE, self.link.lock()).await.ok().and_then(|mut link| link.take());
        if let Some(link) = taken {
            let _ = tokio::time::timeout(PATIENCE, link.connection.close(200, "shutdown".into())).await;
        }
        *self.health.lock().expect("publisher health lock poisoned") = None;
    }
}

#[expect(clippy::needless_pass_by_value, reason = "used as `map_err(unavailable)`")]
fn unavailable(e: lapin::Error) -> PublishError {
    PublishError::Unavailable(e.to_string())
}

/// The headers every event is published with: its schema version, which lets a worker refuse
/// what a newer orderflow wrote (see `crate::events`), and its W3C trace context, under the
/// standard names for other consumers and tools, and again with apalis-amqp's `x-apalis-`
/// prefix, the only headers that reach a task (DESIGN.md section 9; the upstream behaviour this
/// works around is `docs/upstream/apalis-amqp-trace-headers.md`).
fn headers((traceparent, tracestate): (Option<&str>, Option<&str>)) -> lapin::types::FieldTable {
    use lapin::types::AMQPValue;
    let mut headers = lapin::types::FieldTable::default();
    let version = i64::from(crate::events::SCHEMA_VERSION);
    headers.insert(crate::events::SCHEMA_VERSION_HEADER.into(), AMQPValue::LongLongInt(version));
    for (name, value) in [("traceparent", traceparent), ("tracestate", tracestate)] {
        if let Some(value) = value {
            headers.insert(name.into(), AMQPValue::LongString(value.into()));
            headers.insert(format!("x-apalis-{name}").as_str().into(), AMQPValue::LongString(value.into()));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_of_the_message_itself_counts_toward_parking_its_row() {
        assert!(PublishError::Unroutable("q".into()).is_refusal());
        assert!(PublishError::Nacked.is_refusal());
        assert!(!PublishError::Unavailable("down".into()).is_refusal());
        assert!(!PublishError::Timeout("sending", Duration::from_secs(1)).is_refusal());
        assert!(!PublishError::Blocked.is_refusal());
    }
}
