use apalis_core::task::metadata::{Metadata, MetadataStore};

/// The AMQP properties a function cares about, as a handler argument (`Meta<MessageInfo>`).
/// apalis-amqp copies every AMQP property into the task's metadata under its own name, and
/// [`super::EventBackend`] keeps of them only `JOB_METADATA`, which holds what this reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageInfo {
    /// The message's unique id (the outbox row's `message_id`).
    pub message_id: Option<String>,
    /// The id of the request that started the chain of events.
    pub correlation_id: Option<String>,
}

impl MessageInfo {
    /// The correlation id, or `-` when the message carried none.
    pub fn correlation_id(&self) -> &str {
        self.correlation_id.as_deref().unwrap_or("-")
    }

    /// The message id, or `-` when the message carried none.
    pub fn message_id(&self) -> &str {
        self.message_id.as_deref().unwrap_or("-")
    }
}

impl Metadata for MessageInfo {
    type Error = std::convert::Infallible;

    fn extract(store: &MetadataStore) -> Result<Self, Self::Error> {
        Ok(MessageInfo {
            message_id: store.get("message_id").map(str::to_owned),
            correlation_id: store.get("correlation_id").map(str::to_owned),
        })
    }

    fn inject(&self, store: &mut MetadataStore) -> Result<(), Self::Error> {
        if let Some(id) = &self.message_id {
            store.replace("message_id", id.clone());
        }
        if let Some(id) = &self.correlation_id {
            store.replace("correlation_id", id.clone());
        }
        Ok(())
    }
}
