//! RabbitMQ: the queue topology, the confirmed publisher and the outbox relay.
//!
//! Publishing happens in exactly one place, the relay: functions write outbox rows in the same
//! transaction as their state change and never publish directly (DESIGN.md section 6.1).

mod backoff;
mod health;
mod publisher;
mod relay;
mod topology;

pub use backoff::reconnect_backoff;
pub use health::BrokerHealth;
pub use publisher::{OutgoingMessage, PublishError, Publisher};
pub use relay::{OutboxRelay, OutboxSignal};
pub use topology::Topology;
