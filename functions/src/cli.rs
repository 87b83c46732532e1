//! The `orderflow` command line: one binary, a subcommand per role (DESIGN.md section 2).

use clap::{Args, Parser, Subcommand};
use shared::Config;

use crate::{registry::Function, users::UsersCommand};

/// orderflow: event-driven order processing on PostgreSQL and RabbitMQ.
///
/// Orders come in over HTTP; small functions react to their events on RabbitMQ (payment,
/// completion e-mail, expiry audit); a cron function expires stale orders. Every setting is
/// an environment variable and a flag; flags win.
#[derive(Debug, Parser)]
#[command(name = "orderflow", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub config: Config,

    /// What to run; `all` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the process runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP API, board, functions, cron and outbox relay in one process (the default).
    All,
    /// HTTP API, board and outbox relay only.
    Api,
    /// Functions, cron and outbox relay only, with health and metrics on HTTP_ADDR.
    Worker(WorkerArgs),
    /// Create the database if missing, apply migrations, and exit.
    Migrate,
    /// List and replay dead-lettered messages (the `<queue>_error` queues) and parked outbox rows.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Manage who may log in: add, set-password, disable, enable, list.
    #[command(subcommand)]
    Users(UsersCommand),
}

impl Command {
    /// Whether this command serves the board (and so feeds its live log).
    pub fn serves_board(&self) -> bool {
        matches!(self, Command::All | Command::Api)
    }
}

/// `orderflow dlq …`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print each dead-lettered message: id, queue, attempts and last error, then the outbox rows
    /// parked after OUTBOX_MAX_ATTEMPTS refusals (error queue `outbox`). Everything stays put.
    List {
        /// Only this queue (e.g. `order-created-event`, with its parked outbox rows), or `outbox`
        /// for parked outbox rows only; default: everything.
        #[arg(long)]
        queue: Option<String>,
        /// Most messages shown per queue.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move dead-lettered messages back to their queue (published with confirms before they
    /// leave the error queue, so an interruption loses none).
    Replay(ReplayArgs),
}

/// What `orderflow dlq replay` moves.
///
/// Exactly one of `--id` and `--all`; `--queue` goes with either. (A struct-level `#[group]`
/// would put `--queue` in the group too, and refuse `--queue q --all`.)
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(false).args(["id", "all"])))]
pub struct ReplayArgs {
    /// The message with this id.
    #[arg(long)]
    pub id: Option<String>,
    /// Every message of `--queue`.
    #[arg(long, requires = "queue")]
    pub all: bool,
    /// The queue to replay (with `--all`), or to look for `--id` in.
    #[arg(long)]
    pub queue: Option<String>,
}

/// Options of `orderflow worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Run only these functions (comma-separated), so each can be scaled on its own.
    /// Default: all of them.
    #[arg(long, value_enum, value_delimiter = ',', num_args = 1..)]
    pub functions: Vec<Function>,
}
