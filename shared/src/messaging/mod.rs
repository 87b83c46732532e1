//! RabbitMQ: the queue topology, the confirmed publisher and the outbox relay.
//!
//! Publishing happens in exactly one place, the relay: functions write outbox rows in the same
//! transaction as their state change and never publish directly (DESIGN.md section 6.1).

mod backoff;
mod consumer;
mod dead_letters;
mod health;
mod message_info;
mod publisher;
mod relay;
mod shutdown_guard;
mod topology;
mod url;
mod worker;

pub use backoff::reconnect_backoff;
pub use consumer::{ConsumerError, DeadLetterReports, EventBackend, LazyAck};
pub use dead_letters::{DeadLetter, DeadLetters, ReplaySelection};
pub use health::BrokerHealth;
pub use message_info::MessageInfo;
pub use publisher::{OutgoingMessage, PublishError, Publisher};
pub use relay::{ConsumerOf, OutboxRelay, OutboxSignal, RelaySettings};
pub use shutdown_guard::{ShutdownGuardLayer, ShutdownInterrupted};
pub use topology::Topology;
pub use url::{FRAME_MAX, connection_url};
pub use worker::{InterruptibleRetry, RestartBackoff, amqp_config, retry_policy};
