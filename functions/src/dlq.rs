//! `orderflow dlq list` and `orderflow dlq replay`: dead letters from the command line.

use std::io::Write;

use anyhow::Context;
use shared::{
    Config, db,
    events::EventType,
    messaging::{DeadLetters, ReplaySelection, Topology},
};

use crate::cli::{DlqCommand, ReplayArgs};

/// Runs a `dlq` subcommand, printing to standard output.
///
/// # Errors
/// An unknown queue name, or the broker is unreachable.
pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let topology = Topology::new(config.queue_prefix.clone(), config.queue_type);
    let dead_letters = DeadLetters::connect(&config.amqp_url, topology.clone()).await?;
    let outcome = match command {
        DlqCommand::List { queue, limit, json } => {
            let event = queue.as_deref().map(|q| event_of(&topology, q)).transpose()?;
            let letters = dead_letters.list(event, limit).await?;
            // The journal adds attempts and errors; without a database the list still prints.
            let ids: Vec<String> = letters.iter().filter_map(|l| l.message_id.clone()).collect();
            let summaries = match db::pool(&config.database_url, 1) {
                Ok(pool) => db::journal::summaries(&pool, &ids).await.unwrap_or_default(),
                Err(_) => Default::default(),
            };
            let mut out = std::io::stdout().lock();
            if !json {
                writeln!(out, "{:<38} {:<28} {:>8}  LAST ERROR", "MESSAGE ID", "QUEUE", "ATTEMPTS")?;
            }
            for letter in &letters {
                let summary = letter.message_id.as_ref().and_then(|id| summaries.get(id));
                let attempts = summary.map_or_else(|| "-".into(), |s| s.attempts.to_string());
                let error = summary
                    .and_then(|s| s.last_error.clone())
                    .or_else(|| letter.reason.clone())
                    .unwrap_or_else(|| "-".into());
                if json {
                    let line = serde_json::json!({
                        "messageId": letter.message_id, "queue": letter.queue, "attempts": summary.map(|s| s.attempts),
                        "lastError": error, "body": letter.body,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    let id = letter.message_id.as_deref().unwrap_or("-");
                    writeln!(out, "{id:<38} {:<28} {attempts:>8}  {error}", letter.queue)?;
                }
            }
            if !json {
                writeln!(out, "{} dead letter(s)", letters.len())?;
            }
            Ok(())
        }
        DlqCommand::Replay(ReplayArgs { id, all, queue }) => {
            let event = queue.as_deref().map(|q| event_of(&topology, q)).transpose()?;
            let selection = match (id, all, event) {
                (Some(message_id), _, event) => ReplaySelection::Id { message_id, event },
                (None, true, Some(event)) => ReplaySelection::All(event),
                _ => anyhow::bail!("give --id ID, or --queue QUEUE --all"),
            };
            let replayed = dead_letters.replay(&selection).await?;
            let mut out = std::io::stdout().lock();
            for letter in &replayed {
                writeln!(out, "replayed {} into {}", letter.message_id.as_deref().unwrap_or("-"), letter.queue)?;
            }
            writeln!(out, "{} message(s) replayed", replayed.len())?;
            if replayed.is_empty() && matches!(selection, ReplaySelection::Id { .. }) {
                anyhow::bail!("no dead letter has that message id");
            }
            Ok(())
        }
    };
    dead_letters.close().await;
    outcome
}

/// The event whose queue is `queue` (given with or without `QUEUE_PREFIX`).
fn event_of(topology: &Topology, queue: &str) -> anyhow::Result<EventType> {
    topology.event_of_queue(queue).or_else(|| EventType::ALL.into_iter().find(|e| e.queue() == queue)).with_context(
        || {
            let known: Vec<_> = EventType::ALL.iter().map(|e| topology.queue(*e)).collect();
            format!("unknown queue `{queue}`; known queues: {}", known.join(", "))
        },
    )
}
