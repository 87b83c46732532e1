//! PostgreSQL: connecting (creating the database if missing), migrations, and the queries,
//! named by intent. All SQL lives under this module, parameterised, checked at compile time
//! against the `.sqlx/` offline cache: one file per table or reader (`orders`, `outbox`,
//! `journal`, `board`, `timeline`, `retention`, `workers`, ...).
//!
//! It is the lowest layer: it depends on `domain` alone and takes or returns plain rows, so
//! the journal, messaging and the functions call it, never the other way.

pub mod board;
pub mod cron;
pub mod journal;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod products;
pub mod retention;
pub mod settings;
pub mod timeline;
pub mod users;
pub mod workers;

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    ConnectOptions, Connection, PgPool,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tracing::log::LevelFilter;

/// The schema, embedded in the binary from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Creates the database named in `url` if it does not exist. Safe to race with another process
/// doing the same.
///
/// # Errors
/// The server is unreachable or refuses to create the database.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    if sqlx::Postgres::database_exists(url).await.context("Failed to check whether the database exists")? {
        return Ok(());
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!("created the database");
            Ok(())
        }
        Err(e) if created_meanwhile(&e) => Ok(()),
        Err(e) => Err(e).context("Failed to create the database"),
    }
}

/// Whether `create database` failed because another process created the database: one that had
/// committed when this attempt checked (42P04 duplicate_database), or one still under way then,
/// whose row the catalogue's unique index on database names waits for and finds committed
/// (23505). Public for its tests.
pub fn created_meanwhile(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|e| e.code().as_deref() == Some("42P04") || e.is_unique_violation())
}

/// The `statement_timeout` of background work that walks many rows a batch at a time (the
/// expiry sweep, retention), in place of the API's `DB_STATEMENT_TIMEOUT_MS`: long enough for
/// any bounded batch, short enough that a stuck statement ends and the next run tries again.
pub const MAINTENANCE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

fn connect_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = url.parse().context("Invalid DATABASE_URL")?;
    Ok(options
        .application_name("orderflow")
        .log_statements(LevelFilter::Trace)
        .log_slow_statements(LevelFilter::Warn, Duration::from_secs(1)))
}

/// A connection pool. Connections are not pinged on every acquire (a round trip per query
/// otherwise); a broken connection surfaces as a query error, which callers retry. A non-zero
/// `statement_timeout` (`DB_STATEMENT_TIMEOUT_MS`) bounds every statement on its connections;
/// the background work that may take longer sets its own bound
/// ([`MAINTENANCE_STATEMENT_TIMEOUT`]).
///
/// # Errors
/// The URL does not parse.
pub fn pool(url: &str, max_connections: u32, statement_timeout: Duration) -> anyhow::Result<PgPool> {
    Ok(pool_with(connect_options(url)?, max_connections, statement_timeout, &[]))
}

/// Connections the job journal's writer may hold at once: it writes one batch at a time.
pub const JOURNAL_CONNECTIONS: u32 = 2;

/// The main pool's share of a process's `DB_MAX_CONNECTIONS`: all of it, but in a process that
/// `journals` (one that runs functions) the journal's [`JOURNAL_CONNECTIONS`] less; at least one.
pub fn main_pool_size(db_max_connections: u32, journals: bool) -> u32 {
    let journal = if journals { JOURNAL_CONNECTIONS } else { 0 };
    db_max_connections.saturating_sub(journal).max(1)
}

/// The job journal writer's own pool ([`JOURNAL_CONNECTIONS`] connections, the same
/// `statement_timeout`), whose commits do not wait for the WAL to reach the disk
/// (`synchronous_commit = off`). The journal is a record of what happened, not state: after a
/// crash of PostgreSQL or its machine (not of orderflow, not a clean stop) its last commits,
/// at most three `wal_writer_delay`s (600 ms by default), may be missing, never half-written;
/// the orders, their events and their notifications are committed as before, on the main pool.
///
/// # Errors
/// The URL does not parse.
pub fn journal_pool(url: &str, statement_timeout: Duration) -> anyhow::Result<PgPool> {
    let options = connect_options(url)?.application_name(JOURNAL_APPLICATION_NAME);
    Ok(pool_with(options, JOURNAL_CONNECTIONS, statement_timeout, &[("synchronous_commit", "off")]))
}

/// How the journal's connections name themselves to PostgreSQL (`pg_stat_activity`).
pub const JOURNAL_APPLICATION_NAME: &str = "orderflow-journal";

fn pool_with(
    options: PgConnectOptions,
    max_connections: u32,
    statement_timeout: Duration,
    settings: &[(&str, &str)],
) -> PgPool {
    let mut options = options.options(settings.iter().copied());
    if !statement_timeout.is_zero() {
        options = options.options([("statement_timeout", statement_timeout.as_millis().to_string())]);
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

/// Creates the database if needed, connects, and applies pending migrations (concurrent
/// start-ups serialise on sqlx's migration lock) on a connection of their own, without the
/// pool's `statement_timeout`: an index built on a large table may take minutes. Waits for
/// PostgreSQL for up to `patience`.
///
/// # Errors
/// PostgreSQL stayed unreachable, or a migration failed.
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
    patience: Duration,
    statement_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        match ensure_database(url).await {
            Ok(()) => break,
            Err(e) if started.elapsed() < patience => {
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis(), "PostgreSQL is not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
    let mut migrating = connect_options(url)?.connect().await.context("Failed to connect to apply migrations")?;
    MIGRATOR.run(&mut migrating).await.context("Failed to apply database migrations")?;
    let _ = migrating.close().await;
    pool(url, max_connections, statement_timeout)
}

/// Whether the database answers: one trivial round trip, for readiness checks and for waiting
/// until PostgreSQL is back.
///
/// # Errors
/// The database is unreachable.
pub async fn ping(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}

/// The name of the constraint a database error violated, if it is a constraint violation.
/// Lets callers turn a named unique or foreign-key violation into a precise 4xx.
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Whether a database error is worth retrying: the server or the connection went away, or the
/// pool is exhausted. Constraint violations and bad SQL are not.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Tls(_) => true,
        // Class 08 connection exceptions, 57P0x operator intervention (shutdown, crash),
        // 53xxx insufficient resources, 40001/40P01 serialisation failure and deadlock.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") || c == "40001" || c == "40P01"
        }),
        _ => false,
    }
}
