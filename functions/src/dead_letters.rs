//! Dead letters as both the CLI (`orderflow dlq`, [`crate::dlq`]) and the HTTP API
//! (`/api/dead-letters`, [`crate::http::dead_letters`]) see them: which event a queue name
//! means, the letters with what the journal knows of each, and which letters a replay request
//! selects. The callers keep only their shapes: printed lines, JSON, status codes.

use std::{collections::HashMap, fmt};

use shared::{
    db::journal::{self, JobSummary},
    events::EventType,
    messaging::{DeadLetter, ReplaySelection, Topology},
};
use sqlx::PgPool;

/// A queue name that is no event's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownQueue {
    /// The name given.
    pub queue: String,
    /// The queues there are, with `QUEUE_PREFIX`, comma-separated.
    pub known: String,
}

impl fmt::Display for UnknownQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown queue `{}`; known queues: {}", self.queue, self.known)
    }
}

impl std::error::Error for UnknownQueue {}

/// The event whose queue is named `queue`: given with or without `QUEUE_PREFIX`, or as its
/// `_error` queue.
///
/// # Errors
/// No event's queue has that name.
pub fn event_of(topology: &Topology, queue: &str) -> Result<EventType, UnknownQueue> {
    topology.event_of_queue(queue).or_else(|| EventType::ALL.into_iter().find(|e| e.queue() == queue)).ok_or_else(
        || {
            let known: Vec<_> = EventType::ALL.iter().map(|e| topology.queue(*e)).collect();
            UnknownQueue { queue: queue.to_owned(), known: known.join(", ") }
        },
    )
}

/// A dead letter with what the journal knows of its job (nothing when the letter has no
/// message id, or the journal has no row for it, or could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournaledLetter {
    /// The letter.
    pub letter: DeadLetter,
    /// Attempts the job took.
    pub attempts: Option<i32>,
    /// Its last error.
    pub last_error: Option<String>,
}

/// What the journal knows of the jobs of `letters`, by message id.
///
/// # Errors
/// Database errors.
pub async fn summaries(pool: &PgPool, letters: &[DeadLetter]) -> sqlx::Result<HashMap<String, JobSummary>> {
    let ids: Vec<String> = letters.iter().filter_map(|l| l.message_id.clone()).collect();
    journal::summaries(pool, &ids).await
}

/// `letters`, each with the attempts and last error `summaries` has for it.
pub fn with_journal(letters: Vec<DeadLetter>, summaries: &HashMap<String, JobSummary>) -> Vec<JournaledLetter> {
    letters
        .into_iter()
        .map(|letter| {
            let summary = letter.message_id.as_ref().and_then(|id| summaries.get(id));
            JournaledLetter {
                attempts: summary.map(|s| s.attempts),
                last_error: summary.and_then(|s| s.last_error.clone()),
                letter,
            }
        })
        .collect()
}

/// What a replay request asks for: one message by id (`event` narrowing where to look), or
/// every message of `event`'s queue with `all`. `None` for any other combination.
pub fn replay_selection(id: Option<String>, event: Option<EventType>, all: bool) -> Option<ReplaySelection> {
    match (id, event, all) {
        (Some(message_id), event, false) => Some(ReplaySelection::Id { message_id, event }),
        (None, Some(event), true) => Some(ReplaySelection::All(event)),
        _ => None,
    }
}

/// The message id that `selection` asked for and did not find, when it asked for one by id and
/// nothing was `replayed`.
pub fn not_found<'a>(selection: &'a ReplaySelection, replayed: &[DeadLetter]) -> Option<&'a str> {
    match selection {
        ReplaySelection::Id { message_id, .. } if replayed.is_empty() => Some(message_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use shared::config::QueueType;

    use super::*;

    #[test]
    fn a_queue_is_named_with_or_without_its_prefix_or_as_its_error_queue() {
        let topology = Topology::new("t-", QueueType::Classic);
        for name in ["order-created-event", "t-order-created-event", &topology.error_queue(EventType::OrderCreated)] {
            assert_eq!(event_of(&topology, name), Ok(EventType::OrderCreated), "{name}");
        }
        let unknown = event_of(&topology, "nope").unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown queue `nope`; known queues: t-order-created-event, t-order-completed-event, t-order-expired-event"
        );
    }

    #[test]
    fn a_replay_names_one_id_or_asks_for_all_of_one_queue() {
        let event = Some(EventType::OrderExpired);
        assert_eq!(
            replay_selection(Some("m".into()), event, false),
            Some(ReplaySelection::Id { message_id: "m".into(), event })
        );
        assert_eq!(replay_selection(None, event, true), Some(ReplaySelection::All(EventType::OrderExpired)));
        assert_eq!(replay_selection(Some("m".into()), event, true), None);
        assert_eq!(replay_selection(None, None, true), None);
        assert_eq!(replay_selection(None, event, false), None);
    }
}
