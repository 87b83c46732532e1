//! Dead letters as both the CLI (`orderflow dlq`, [`crate::dlq`]) and the HTTP API
//! (`/api/dead-letters`, [`crate::http::dead_letters`]) see them: which event a queue name
//! means, the letters with what the journal knows of each, and which letters a replay request
//! selects. The callers keep only their shapes: printed lines, JSON, status codes.
//!
//! Two kinds of letter: messages in the `<queue>_error` queues (a function gave up on them), and
//! outbox rows parked after `OUTBOX_MAX_ATTEMPTS` refusals by the broker (they never left
//! PostgreSQL), listed under the error queue name [`OUTBOX`]. Replaying the first publishes it
//! back into its queue; replaying the second puts it back in the relay's work list.

use std::{collections::HashMap, fmt};

use shared::{
    db::{
        journal::{self, JobSummary},
        outbox::{self, ParkedRow},
    },
    events::EventType,
    messaging::{DeadLetter, ReplaySelection, Topology},
};
use sqlx::PgPool;
use uuid::Uuid;

/// The name that selects parked outbox rows, and the error queue they are listed under.
pub const OUTBOX: &str = "outbox";

/// Where letters are looked for: parked outbox rows, or one event's error queue (and its
/// parked rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Parked outbox rows only.
    Outbox,
    /// This event's error queue and its parked outbox rows.
    Queue(EventType),
}

impl Source {
    /// The event this source narrows to, if any.
    pub fn event(self) -> Option<EventType> {
        match self {
            Source::Outbox => None,
            Source::Queue(event) => Some(event),
        }
    }
}

/// What `name` selects: [`OUTBOX`], or an event's queue as [`event_of`] reads it.
///
/// # Errors
/// Neither.
pub fn source_of(topology: &Topology, name: &str) -> Result<Source, UnknownQueue> {
    if name == OUTBOX { Ok(Source::Outbox) } else { event_of(topology, name).map(Source::Queue) }
}

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
            let mut known: Vec<_> = EventType::ALL.iter().map(|e| topology.queue(*e)).collect();
            known.push(OUTBOX.to_owned());
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

/// What a replay request asks for: one letter by id (`source` narrowing where to look), or
/// every letter of `source` with `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The letter with this message id.
    Id {
        /// The message id.
        message_id: String,
        /// Only look here.
        source: Option<Source>,
    },
    /// Every letter of this source.
    All(Source),
}

impl Selection {
    /// The parked outbox rows it asks for, as (message id, event type) filters; `None` when it
    /// cannot name one (an id that is no UUID never named an outbox row).
    fn parked(&self) -> Option<(Option<Uuid>, Option<EventType>)> {
        match self {
            Selection::Id { message_id, source } => {
                Some((Some(message_id.parse().ok()?), source.and_then(Source::event)))
            }
            Selection::All(source) => Some((None, source.event())),
        }
    }

    /// What it asks of the error queues, once `unparked` rows were put back (`None`: nothing,
    /// because it names only parked rows, or the one it names was among them).
    pub fn in_error_queues(&self, unparked: &[DeadLetter]) -> Option<ReplaySelection> {
        match self {
            Selection::Id { .. } if !unparked.is_empty() => None,
            Selection::Id { source: Some(Source::Outbox), .. } | Selection::All(Source::Outbox) => None,
            Selection::Id { message_id, source } => {
                Some(ReplaySelection::Id { message_id: message_id.clone(), event: source.and_then(Source::event) })
            }
            Selection::All(Source::Queue(event)) => Some(ReplaySelection::All(*event)),
        }
    }

    /// The message id it asked for and did not find, when it asked for one by id and nothing
    /// was `replayed`.
    pub fn not_found<'a>(&'a self, replayed: &[DeadLetter]) -> Option<&'a str> {
        match self {
            Selection::Id { message_id, .. } if replayed.is_empty() => Some(message_id),
            _ => None,
        }
    }
}

/// What a replay request asks for: one letter by id, or every letter of `source` with `all`.
/// `None` for any other combination.
pub fn replay_selection(id: Option<String>, source: Option<Source>, all: bool) -> Option<Selection> {
    match (id, source, all) {
        (Some(message_id), source, false) => Some(Selection::Id { message_id, source }),
        (None, Some(source), true) => Some(Selection::All(source)),
        _ => None,
    }
}

/// Up to `limit` parked outbox rows of `source` (all of them for `None`), as letters with their
/// attempts and the broker's last refusal.
///
/// # Errors
/// Database errors.
pub async fn parked(
    pool: &PgPool,
    topology: &Topology,
    source: Option<Source>,
    limit: usize,
) -> sqlx::Result<Vec<JournaledLetter>> {
    let event = source.and_then(Source::event).map(EventType::as_str);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = outbox::parked(pool, event, limit).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let attempts = Some(row.attempts);
            let last_error = row.last_error.clone();
            JournaledLetter { letter: parked_letter(topology, row), attempts, last_error }
        })
        .collect())
}

/// Puts the parked outbox rows `selection` asks for back in the relay's work list (the caller
/// wakes the relay). Returns them as letters.
///
/// # Errors
/// Database errors.
pub async fn unpark(pool: &PgPool, topology: &Topology, selection: &Selection) -> sqlx::Result<Vec<DeadLetter>> {
    let Some((message_id, event)) = selection.parked() else { return Ok(Vec::new()) };
    let rows = outbox::unpark(pool, message_id, event.map(EventType::as_str)).await?;
    for row in &rows {
        tracing::info!(message.id = %row.message_id, "parked outbox row replayed");
    }
    Ok(rows.into_iter().map(|row| parked_letter(topology, row)).collect())
}

fn parked_letter(topology: &Topology, row: ParkedRow) -> DeadLetter {
    let queue = row.event_type.parse::<EventType>().map_or_else(|_| row.event_type.clone(), |e| topology.queue(e));
    DeadLetter {
        message_id: Some(row.message_id.to_string()),
        queue,
        error_queue: OUTBOX.to_owned(),
        reason: Some("parked".to_owned()),
        deaths: 1,
        body: row.payload,
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
            "unknown queue `nope`; known queues: t-order-created-event, t-order-completed-event, t-order-expired-event, outbox"
        );
    }

    #[test]
    fn outbox_names_the_parked_rows_and_is_listed_among_the_known_queues() {
        let topology = Topology::new("t-", QueueType::Classic);
        assert_eq!(source_of(&topology, "outbox"), Ok(Source::Outbox));
        assert_eq!(source_of(&topology, "order-expired-event"), Ok(Source::Queue(EventType::OrderExpired)));
        assert!(source_of(&topology, "nope").unwrap_err().known.ends_with(", outbox"));
    }

    #[test]
    fn a_replay_names_one_id_or_asks_for_all_of_one_source() {
        let source = Some(Source::Queue(EventType::OrderExpired));
        assert_eq!(
            replay_selection(Some("m".into()), source, false),
            Some(Selection::Id { message_id: "m".into(), source })
        );
        assert_eq!(replay_selection(None, source, true), Some(Selection::All(Source::Queue(EventType::OrderExpired))));
        assert_eq!(replay_selection(Some("m".into()), source, true), None);
        assert_eq!(replay_selection(None, None, true), None);
        assert_eq!(replay_selection(None, source, false), None);
    }

    fn letter() -> DeadLetter {
        DeadLetter {
            message_id: Some("m".into()),
            queue: "q".into(),
            error_queue: OUTBOX.into(),
            reason: None,
            deaths: 1,
            body: "{}".into(),
        }
    }

    #[test]
    fn the_error_queues_are_searched_only_for_what_parked_rows_did_not_answer() {
        let expired = Source::Queue(EventType::OrderExpired);
        let by_id = |source| Selection::Id { message_id: "m".into(), source };
        assert_eq!(
            by_id(Some(expired)).in_error_queues(&[]),
            Some(ReplaySelection::Id { message_id: "m".into(), event: Some(EventType::OrderExpired) })
        );
        assert_eq!(by_id(None).in_error_queues(&[letter()]), None, "found among the parked rows");
        assert_eq!(by_id(Some(Source::Outbox)).in_error_queues(&[]), None);
        assert_eq!(Selection::All(Source::Outbox).in_error_queues(&[]), None);
        assert_eq!(
            Selection::All(expired).in_error_queues(&[letter()]),
            Some(ReplaySelection::All(EventType::OrderExpired)),
            "all of a queue: its error queue too"
        );
    }

    #[test]
    fn only_a_uuid_can_name_a_parked_row() {
        let id = Uuid::now_v7();
        let by_id = |message_id: String| Selection::Id { message_id, source: None };
        assert_eq!(by_id(id.to_string()).parked(), Some((Some(id), None)));
        assert_eq!(by_id("not-a-uuid".into()).parked(), None);
        assert_eq!(
            Selection::All(Source::Queue(EventType::OrderCreated)).parked(),
            Some((None, Some(EventType::OrderCreated)))
        );
    }

    #[test]
    fn a_selection_by_id_that_replayed_nothing_was_not_found() {
        let selection = Selection::Id { message_id: "m".into(), source: None };
        assert_eq!(selection.not_found(&[]), Some("m"));
        assert_eq!(selection.not_found(&[letter()]), None);
        assert_eq!(Selection::All(Source::Outbox).not_found(&[]), None);
    }
}
