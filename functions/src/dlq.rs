//! `orderflow dlq list` and `orderflow dlq replay`: dead letters from the command line, from the
//! error queues (through the broker) and parked outbox rows (from PostgreSQL).

use std::io::Write;

use shared::{
    Config, db,
    messaging::{DeadLetters, Topology},
};
use sqlx::PgPool;

use crate::{
    cli::{DlqCommand, ReplayArgs},
    dead_letters::{self, JournaledLetter, Source, source_of},
};

/// Runs a `dlq` subcommand, printing to standard output.
///
/// # Errors
/// An unknown queue name, or the broker (or, for parked rows, the database) is unreachable.
pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let topology = Topology::new(config.queue_prefix.clone(), config.queue_type);
    // Connects lazily: a pool that cannot reach PostgreSQL fails only when used.
    let pool = db::pool(&config.database_url, 1, config.db_statement_timeout())?;
    match command {
        DlqCommand::List { queue, limit, json } => {
            let source = queue.as_deref().map(|q| source_of(&topology, q)).transpose()?;
            let mut letters = Vec::new();
            if source != Some(Source::Outbox) {
                letters = error_queue_letters(config, &topology, &pool, source, limit).await?;
            }
            match dead_letters::parked(&pool, &topology, source, limit).await {
                Ok(parked) => letters.extend(parked),
                // The error queues still print without a database; parked rows need it.
                Err(e) if source != Some(Source::Outbox) => {
                    eprintln!("orderflow: parked outbox rows not listed, PostgreSQL unreachable: {e}");
                }
                Err(e) => return Err(e.into()),
            }
            print_letters(&letters, json)?;
            Ok(())
        }
        DlqCommand::Replay(ReplayArgs { id, all, queue }) => {
            let source = queue.as_deref().map(|q| source_of(&topology, q)).transpose()?;
            // clap refuses `--id` with `--all`, and `--all` without `--queue`.
            let Some(selection) = dead_letters::replay_selection(id, source, all) else {
                anyhow::bail!("give --id ID, or --queue QUEUE --all");
            };
            // The relay polls the outbox every OUTBOX_POLL_MS: unparked rows go out from there.
            let mut replayed = match dead_letters::unpark(&pool, &topology, &selection).await {
                Ok(unparked) => unparked,
                // The error queues can still be replayed without a database; parked rows cannot.
                Err(e) if selection.in_error_queues(&[]).is_some() => {
                    eprintln!("orderflow: parked outbox rows not replayed, PostgreSQL unreachable: {e}");
                    Vec::new()
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(in_error_queues) = selection.in_error_queues(&replayed) {
                let error_queues =
                    DeadLetters::connect(&config.amqp_url, topology.clone(), config.broker_timeout()).await?;
                let moved = error_queues.replay(&in_error_queues).await;
                error_queues.close().await;
                replayed.extend(moved?);
            }
            let mut out = std::io::stdout().lock();
            for letter in &replayed {
                writeln!(out, "replayed {} into {}", letter.message_id.as_deref().unwrap_or("-"), letter.queue)?;
            }
            writeln!(out, "{} message(s) replayed", replayed.len())?;
            if selection.not_found(&replayed).is_some() {
                anyhow::bail!("no dead letter has that message id");
            }
            Ok(())
        }
    }
}

/// The error queues' letters of `source` (every queue for `None`), with what the journal knows
/// of each when the database answers.
async fn error_queue_letters(
    config: &Config,
    topology: &Topology,
    pool: &PgPool,
    source: Option<Source>,
    limit: usize,
) -> anyhow::Result<Vec<JournaledLetter>> {
    let error_queues = DeadLetters::connect(&config.amqp_url, topology.clone(), config.broker_timeout()).await?;
    let letters = error_queues.list(source.and_then(Source::event), limit).await;
    error_queues.close().await;
    let letters = letters?;
    // The journal adds attempts and errors; without a database the list still prints.
    let summaries = dead_letters::summaries(pool, &letters).await.unwrap_or_default();
    Ok(dead_letters::with_journal(letters, &summaries))
}

fn print_letters(letters: &[JournaledLetter], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(out, "{:<38} {:<28} {:>8}  LAST ERROR", "MESSAGE ID", "QUEUE", "ATTEMPTS")?;
    }
    for journaled in letters {
        let letter = &journaled.letter;
        let attempts = journaled.attempts.map_or_else(|| "-".into(), |a| a.to_string());
        let error = journaled.last_error.as_deref().or(letter.reason.as_deref()).unwrap_or("-");
        if json {
            let line = serde_json::json!({
                "messageId": letter.message_id, "queue": letter.queue, "errorQueue": letter.error_queue,
                "attempts": journaled.attempts, "lastError": error, "body": letter.body,
            });
            writeln!(out, "{line}")?;
        } else {
            let id = letter.message_id.as_deref().unwrap_or("-");
            let queue = if letter.error_queue == dead_letters::OUTBOX {
                format!("{} (parked)", letter.queue)
            } else {
                letter.queue.clone()
            };
            writeln!(out, "{id:<38} {queue:<28} {attempts:>8}  {error}")?;
        }
    }
    if !json {
        writeln!(out, "{} dead letter(s)", letters.len())?;
    }
    Ok(())
}
