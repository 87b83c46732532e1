//! `orderflow dlq list` and `orderflow dlq replay`: dead letters from the command line.

use std::io::Write;

use shared::{
    Config, db,
    messaging::{DeadLetters, Topology},
};

use crate::{
    cli::{DlqCommand, ReplayArgs},
    dead_letters::{self, event_of},
};

/// Runs a `dlq` subcommand, printing to standard output.
///
/// # Errors
/// An unknown queue name, or the broker is unreachable.
pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let topology = Topology::new(config.queue_prefix.clone(), config.queue_type);
    let error_queues = DeadLetters::connect(&config.amqp_url, topology.clone()).await?;
    let outcome = match command {
        DlqCommand::List { queue, limit, json } => {
            let event = queue.as_deref().map(|q| event_of(&topology, q)).transpose()?;
            let letters = error_queues.list(event, limit).await?;
            // The journal adds attempts and errors; without a database the list still prints.
            let summaries = match db::pool(&config.database_url, 1, config.db_statement_timeout()) {
                Ok(pool) => dead_letters::summaries(&pool, &letters).await.unwrap_or_default(),
                Err(_) => Default::default(),
            };
            let letters = dead_letters::with_journal(letters, &summaries);
            let mut out = std::io::stdout().lock();
            if !json {
                writeln!(out, "{:<38} {:<28} {:>8}  LAST ERROR", "MESSAGE ID", "QUEUE", "ATTEMPTS")?;
            }
            for journaled in &letters {
                let letter = &journaled.letter;
                let attempts = journaled.attempts.map_or_else(|| "-".into(), |a| a.to_string());
                let error = journaled.last_error.as_deref().or(letter.reason.as_deref()).unwrap_or("-");
                if json {
                    let line = serde_json::json!({
                        "messageId": letter.message_id, "queue": letter.queue, "attempts": journaled.attempts,
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
            // clap refuses `--id` with `--all`, and `--all` without `--queue`.
            let Some(selection) = dead_letters::replay_selection(id, event, all) else {
                anyhow::bail!("give --id ID, or --queue QUEUE --all");
            };
            let replayed = error_queues.replay(&selection).await?;
            let mut out = std::io::stdout().lock();
            for letter in &replayed {
                writeln!(out, "replayed {} into {}", letter.message_id.as_deref().unwrap_or("-"), letter.queue)?;
            }
            writeln!(out, "{} message(s) replayed", replayed.len())?;
            if dead_letters::not_found(&selection, &replayed).is_some() {
                anyhow::bail!("no dead letter has that message id");
            }
            Ok(())
        }
    };
    error_queues.close().await;
    outcome
}
