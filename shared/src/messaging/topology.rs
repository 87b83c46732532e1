//! The queue topology of DESIGN.md section 5. Every name carries `QUEUE_PREFIX`.
//!
//! Each event queue is durable and dead-letters into `<queue>_error` through one direct
//! exchange: a message rejected without requeue (retries exhausted, undecodable, permanent
//! failure) is kept there, never dropped. apalis-amqp re-declares a queue when a worker starts,
//! and RabbitMQ refuses a declaration whose flags or `x-*` arguments differ
//! (`PRECONDITION_FAILED`), so workers take their declaration from here too.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

use crate::{config::QueueType, events::EventType};

/// Queue and exchange names and declarations for one `QUEUE_PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    queue_type: QueueType,
}

impl Topology {
    /// The topology for a prefix (empty in production) and queue type.
    pub fn new(prefix: impl Into<String>, queue_type: QueueType) -> Self {
        Topology { prefix: prefix.into(), queue_type }
    }

    /// The queue an event travels on.
    pub fn queue(&self, event: EventType) -> String {
        format!("{}{}", self.prefix, event.queue())
    }

    /// Where an event's queue dead-letters to.
    pub fn error_queue(&self, event: EventType) -> String {
        format!("{}_error", self.queue(event))
    }

    /// The direct exchange all event queues dead-letter through (routing key: the queue name).
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}orderflow.dead-letter", self.prefix)
    }

    /// Every queue name, event queues then error queues.
    pub fn all_queues(&self) -> Vec<String> {
        let mut queues: Vec<_> = EventType::ALL.iter().map(|e| self.queue(*e)).collect();
        queues.extend(EventType::ALL.iter().map(|e| self.error_queue(*e)));
        queues
    }

    /// The event type whose queue (or error queue) has this name.
    pub fn event_of_queue(&self, queue: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| self.queue(*e) == queue || self.error_queue(*e) == queue)
    }

    /// Flags every queue is declared with.
    pub fn queue_options() -> QueueDeclareOptions {
        QueueDeclareOptions { durable: true, exclusive: false, auto_delete: false, ..QueueDeclareOptions::default() }
    }

    /// The `x-*` arguments of an event queue. String values must be `LongString`: RabbitMQ
    /// resets the whole connection on a `ShortString` argument.
    pub fn queue_arguments(&self, event: EventType) -> FieldTable {
        let mut args = self.type_arguments();
        args.insert("x-dead-letter-exchange".into(), long_string(self.dead_letter_exchange()));
        args.insert("x-dead-letter-routing-key".into(), long_string(self.queue(event)));
        if self.queue_type == QueueType::Quorum {
            // Quorum queues dead-letter at-most-once by default: a message rejected while its
            // error queue is unavailable would be dropped. At-least-once keeps it until the error
            // queue confirms it, and RabbitMQ requires `reject-publish` overflow for that.
            args.insert("x-dead-letter-strategy".into(), long_string("at-least-once".to_owned()));
            args.insert("x-overflow".into(), long_string("reject-publish".to_owned()));
        }
        args
    }

    fn type_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string(self.queue_type.as_str().to_owned()));
        args
    }

    /// Declares the dead-letter exchange, the error queues, the event queues and their
    /// bindings. Idempotent: declaring what exists with the same arguments is a no-op.
    ///
    /// # Errors
    /// Broker errors, including `PRECONDITION_FAILED` when an existing queue was declared
    /// differently (e.g. another `QUEUE_TYPE`).
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let exchange = self.dead_letter_exchange();
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
        for event in EventType::ALL {
            let queue = self.queue(event);
            let error_queue = self.error_queue(event);
            channel.queue_declare(error_queue.as_str().into(), Self::queue_options(), self.type_arguments()).await?;
            channel
                .queue_bind(
                    error_queue.as_str().into(),
                    exchange.as_str().into(),
                    queue.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            channel.queue_declare(queue.as_str().into(), Self::queue_options(), self.queue_arguments(event)).await?;
        }
        Ok(())
    }
}

fn long_string(value: String) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_the_prefix() {
        let topology = Topology::new("t1-", QueueType::Classic);
        assert_eq!(topology.queue(EventType::OrderCreated), "t1-order-created-event");
        assert_eq!(topology.error_queue(EventType::OrderExpired), "t1-order-expired-event_error");
        assert!(topology.dead_letter_exchange().starts_with("t1-"));
        assert!(topology.all_queues().iter().all(|q| q.starts_with("t1-")));
        assert_eq!(topology.event_of_queue("t1-order-completed-event_error"), Some(EventType::OrderCompleted));
    }

    #[test]
    fn queue_arguments_are_long_strings() {
        let topology = Topology::new("", QueueType::Quorum);
        let args = topology.queue_arguments(EventType::OrderCreated);
        for (key, value) in args.inner() {
            assert!(matches!(value, AMQPValue::LongString(_)), "{key} is not a LongString");
        }
        assert_eq!(args.inner().get("x-queue-type"), Some(&long_string("quorum".into())));
        assert_eq!(args.inner().get("x-dead-letter-strategy"), Some(&long_string("at-least-once".into())));
    }

    #[test]
    fn classic_queues_keep_the_default_dead_letter_strategy() {
        let args = Topology::new("", QueueType::Classic).queue_arguments(EventType::OrderCreated);
        assert!(!args.inner().contains_key("x-dead-letter-strategy"));
        assert!(!args.inner().contains_key("x-overflow"));
    }
}
