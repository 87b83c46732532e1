//! RabbitMQ: the queue topology, the confirmed publisher and the outbox relay.
//!
//! Publishing happens in exactly one place, the relay: functions write outbox rows in the same
//! transaction as their state change and never publish directly (DESIGN.md section 6.1).

mod budget;
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

pub use budget::{JobBudget, JobPermit};
pub use consumer::{ConsumerError, DeadLetterReports, EventBackend, LazyAck};
pub use dead_letters::{DeadLetter, DeadLetters, ReplaySelection};
pub use health::BrokerHealth;
pub use message_info::MessageInfo;
pub use publisher::{OutgoingMessage, PublishError, Publisher};
pub use relay::{OutboxRelay, OutboxSignal, RelaySettings};
pub use shutdown_guard::ShutdownGuardLayer;
pub use topology::Topology;
pub use url::{FRAME_MAX, connection_url};
pub use worker::{InterruptibleRetry, RestartBackoff, amqp_config, retry_policy};

// Re-exported where callers have always found them; they live at the crate's top level because
// the journal uses them too, and the journal must not depend on messaging.
pub use crate::{backoff::reconnect_backoff, shutdown::ShutdownInterrupted};
