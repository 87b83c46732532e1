//! One `Config` for every process: each setting is an environment variable and a `--flag`
//! (DESIGN.md section 8), with the default docker-compose uses and a doc line `--help` shows.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::{Args, ValueEnum};

use crate::domain::account;

/// Token signing secrets that have been published with orderflow (the old development default of
/// the code, docker-compose.yml and the README, and the values its test suites used): anyone can
/// sign tokens with them, so `JWT_SECRET` may not be any of them.
pub const PUBLISHED_JWT_SECRETS: [&str; 4] = [
    "orderflow-development-secret-change-me",
    "a-test-secret-that-is-long-enough",
    "fault-suite-secret-long-enough",
    "a-benchmark-secret-long-enough",
];

/// Every setting of orderflow. Flags are global, so they may follow any subcommand.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL URL; the database is created at start-up if it does not exist.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "postgres://postgres:postgres@localhost:5432/orderflow",
        hide_env_values = true
    )]
    pub database_url: String,

    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        global = true,
        default_value = "amqp://guest:guest@localhost:5672/%2f",
        hide_env_values = true,
        value_parser = parse_amqp_url
    )]
    pub amqp_url: String,

    /// Address the HTTP API listens on. Loopback by default; on any other address the seeded
    /// demo password stops working (set ADMIN_PASSWORD).
    #[arg(long, env = "HTTP_ADDR", global = true, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Address the job board (UI and its API) listens on. Loopback by default, as HTTP_ADDR.
    #[arg(long, env = "BOARD_ADDR", global = true, default_value = "127.0.0.1:8081")]
    pub board_addr: SocketAddr,

    /// Simulated payment time in milliseconds.
    #[arg(long, env = "PAYMENT_DELAY_MS", global = true, default_value_t = 5000)]
    pub payment_delay_ms: u64,

    /// Probability (0 to 1) that a simulated payment completes.
    #[arg(long, env = "PAYMENT_SUCCESS_RATE", global = true, default_value_t = 0.5, value_parser = parse_rate)]
    pub payment_success_rate: f64,

    /// An order Processing for longer than this many seconds expires.
    #[arg(long, env = "ORDER_TTL_SECS", global = true, default_value_t = 600)]
    pub order_ttl_secs: u64,

    /// Cron schedule of the expiry sweep, seconds field first.
    #[arg(long, env = "EXPIRY_SCHEDULE", global = true, default_value = "0 * * * * *", value_parser = parse_schedule)]
    pub expiry_schedule: String,

    /// Retries after a job's first attempt before it is dead-lettered.
    #[arg(long, env = "MAX_RETRIES", global = true, default_value_t = 3)]
    pub max_retries: usize,

    /// First retry backoff in milliseconds; each further retry doubles it.
    #[arg(long, env = "RETRY_BASE_MS", global = true, default_value_t = 1000)]
    pub retry_base_ms: u64,

    /// Secret that signs API tokens (HS256), 16+ characters. Unset: a random secret generated
    /// once and kept in the database, shared by every process using it.
    #[arg(long, env = "JWT_SECRET", global = true, hide_env_values = true, value_parser = parse_jwt_secret)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of an API token in seconds.
    #[arg(long, env = "JWT_TTL_SECS", global = true, default_value_t = 3600)]
    pub jwt_ttl_secs: u64,

    /// E-mail of the admin that start-up creates, or updates, when ADMIN_PASSWORD is set.
    #[arg(long, env = "ADMIN_EMAIL", global = true, default_value = "admin@example.com", value_parser = parse_email)]
    pub admin_email: String,

    /// Password (8+ characters) of the ADMIN_EMAIL admin, set at start-up; it replaces the demo
    /// password. Prefer the environment variable: a flag shows in the process list.
    #[arg(long, env = "ADMIN_PASSWORD", global = true, hide_env_values = true, value_parser = parse_password)]
    pub admin_password: Option<Secret>,

    /// Seconds in-flight work may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", global = true, default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Prefix of every queue and exchange name (tests, benchmarks, several environments on one broker).
    #[arg(long, env = "QUEUE_PREFIX", global = true, default_value = "")]
    pub queue_prefix: String,

    /// RabbitMQ queue type: classic, or quorum for clustered RabbitMQ.
    #[arg(long, env = "QUEUE_TYPE", global = true, value_enum, default_value_t = QueueType::Classic)]
    pub queue_type: QueueType,

    /// Log format: pretty for people, json for machines.
    #[arg(long, env = "LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's env-filter syntax (e.g. `info,orderflow=debug`).
    #[arg(long, env = "RUST_LOG", global = true, default_value = "info,sqlx::postgres::notice=warn")]
    pub rust_log: String,

    /// OpenTelemetry collector (OTLP/HTTP, protobuf) that spans are exported to, e.g.
    /// `http://localhost:4318` (`/v1/traces` is appended); unset, nothing is exported. The SDK's
    /// standard variables apply too: OTEL_TRACES_SAMPLER (+ _ARG), OTEL_EXPORTER_OTLP_HEADERS,
    /// OTEL_EXPORTER_OTLP_TIMEOUT.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// OTLP protocol; only `http/protobuf` is supported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", global = true, default_value = "http/protobuf", value_parser = ["http/protobuf"])]
    pub otel_exporter_otlp_protocol: String,

    /// The service name spans are exported under.
    #[arg(long, env = "OTEL_SERVICE_NAME", global = true, default_value = "orderflow")]
    pub otel_service_name: String,

    /// `true` turns OpenTelemetry off entirely: no spans, no trace ids in logs, outbox or journal,
    /// no export (the OpenTelemetry standard variable; the benchmark's baseline for tracing).
    #[arg(long, env = "OTEL_SDK_DISABLED", global = true, default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub otel_sdk_disabled: bool,

    /// Messages each queue worker holds at once, i.e. how many jobs of one function run
    /// concurrently (thousands of payments can wait at once; 1 to 65535).
    #[arg(long, env = "WORKER_PREFETCH", global = true, default_value_t = 10_000, value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_prefetch: u16,

    /// Jobs one process holds in flight across all its queues: the memory budget (the default
    /// keeps a process under 256 MiB whatever the backlog). Each queue's prefetch is capped by it.
    #[arg(long, env = "WORKER_MAX_IN_FLIGHT", global = true, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub worker_max_in_flight: u32,

    /// Most PostgreSQL connections one process holds: the job journal's 2, the rest (at least
    /// 1) for everything else.
    #[arg(long, env = "DB_MAX_CONNECTIONS", global = true, default_value_t = 20)]
    pub db_max_connections: u32,

    /// Largest accepted HTTP request body in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", global = true, default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a client may take to send a request's headers, from its connection's start or
    /// previous response; past them the server closes the connection (idle keep-alive ones too).
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_SECS", global = true, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_read_timeout_secs: u64,

    /// Seconds a request may take until its response starts (a streamed body, such as the
    /// board's live log, is not bounded); past them it gets 503 `request_timeout`.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_SECS", global = true, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_request_timeout_secs: u64,

    /// Connections each listener (the API's, the board's) holds open at once; past them a new
    /// connection gets 503 `overloaded` with Retry-After and is closed.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", global = true, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,

    /// Requests each listener works on at once (health and metrics aside); past them a request
    /// gets 503 `overloaded` with Retry-After.
    #[arg(long, env = "HTTP_MAX_IN_FLIGHT", global = true, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_in_flight: u32,

    /// How often the outbox relay looks for unsent rows written by other processes, in milliseconds.
    #[arg(long, env = "OUTBOX_POLL_MS", global = true, default_value_t = 500)]
    pub outbox_poll_ms: u64,

    /// Hours finished jobs stay in the journal (and sent outbox rows, cron runs) before pruning.
    #[arg(long, env = "JOURNAL_RETENTION_HOURS", global = true, default_value_t = 168)]
    pub journal_retention_hours: u64,

    /// Hours an Idempotency-Key replays its order; older keys no longer replay and are pruned.
    #[arg(long, env = "IDEMPOTENCY_TTL_HOURS", global = true, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub idempotency_ttl_hours: u64,

    /// Seconds after which a job or cron run left Running by a worker that sent no heartbeat
    /// meanwhile (its process died) is marked Killed; live workers beat every 5 s.
    #[arg(long, env = "ORPHAN_TIMEOUT_SECS", global = true, default_value_t = 300, value_parser = clap::value_parser!(u64).range(15..))]
    pub orphan_timeout_secs: u64,

    /// Seconds after which a worker that sent no heartbeat loses its row in the board's worker list.
    #[arg(long, env = "DEAD_WORKER_RETENTION_SECS", global = true, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(15..))]
    pub dead_worker_retention_secs: u64,

    /// Seconds between two retention sweeps (orphans, dead workers, pruning); one process at a
    /// time runs each.
    #[arg(long, env = "RETENTION_INTERVAL_SECS", global = true, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_interval_secs: u64,

    /// Longest a database statement of the API, the functions, the relay or the journal may run,
    /// in milliseconds (0: no limit); migrations, the expiry sweep and retention have their own.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", global = true, default_value_t = 10_000)]
    pub db_statement_timeout_ms: u64,

    /// The readiness body shows the outbox as `lagging` when its oldest unpublished row is older
    /// than this many seconds (an API stays ready: the outbox absorbs a broker outage).
    #[arg(long, env = "OUTBOX_LAG_LIMIT_SECS", global = true, default_value_t = 60)]
    pub outbox_lag_limit_secs: u64,

    /// Most outbox rows the relay publishes in one batch.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", global = true, default_value_t = 500)]
    pub outbox_batch_size: i64,

    /// Times the broker may refuse one outbox row (unroutable, nacked) before the row is parked:
    /// out of the relay's batches, listed with the dead letters, replayable. A broker outage or
    /// alarm never counts.
    #[arg(long, env = "OUTBOX_MAX_ATTEMPTS", global = true, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub outbox_max_attempts: u16,

    /// Longest one broker call of the relay or the dead-letter tools may take (connecting,
    /// sending a batch, awaiting its confirms), in seconds; a broker under a resource alarm
    /// blocks publishers, and this turns that into a retried failure instead of a hang.
    #[arg(long, env = "BROKER_TIMEOUT_SECS", global = true, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub broker_timeout_secs: u64,

    /// Password checks (argon2, about 7 MiB each) that run at once, for login and the board.
    /// Unset: the number of CPU cores, at most 4.
    #[arg(long, env = "PASSWORD_CHECK_THREADS", global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub password_check_threads: Option<u16>,

    /// Password checks that may wait for a thread; past them, a login gets 429 with Retry-After.
    #[arg(long, env = "PASSWORD_CHECK_QUEUE", global = true, default_value_t = 8)]
    pub password_check_queue: u16,

    /// Failed logins one account (e-mail) may have per LOGIN_THROTTLE_WINDOW_SECS, at once or
    /// spread out; past them, its logins get 429 with Retry-After until one comes back.
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", global = true, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_per_account: u32,

    /// Failed logins one client address may have per LOGIN_THROTTLE_WINDOW_SECS, whatever the
    /// account (the board's logins count too).
    #[arg(long, env = "LOGIN_FAILURES_PER_ADDRESS", global = true, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_per_address: u32,

    /// Seconds after which every failed login has stopped counting against its account and address.
    #[arg(long, env = "LOGIN_THROTTLE_WINDOW_SECS", global = true, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub login_throttle_window_secs: u64,
}

impl Config {
    /// Simulated payment time.
    pub fn payment_delay(&self) -> Duration {
        Duration::from_millis(self.payment_delay_ms)
    }

    /// How long in-flight work may take after a shutdown signal.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// Attempts a job may take: its first and `MAX_RETRIES` more, as the journal counts them.
    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.max_retries.saturating_add(1)).unwrap_or(i32::MAX)
    }

    /// How long an idempotency key replays.
    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_hours * 3600)
    }

    /// The pool's `statement_timeout` (zero: none).
    pub fn db_statement_timeout(&self) -> Duration {
        Duration::from_millis(self.db_statement_timeout_ms)
    }

    /// The bound on each broker call of the relay and the dead-letter tools.
    pub fn broker_timeout(&self) -> Duration {
        Duration::from_secs(self.broker_timeout_secs)
    }

    /// The relay's fallback polling interval.
    pub fn outbox_poll_interval(&self) -> Duration {
        Duration::from_millis(self.outbox_poll_ms)
    }

    /// Parses a configuration from environment variables and defaults only (no command line),
    /// which is what tests and benchmarks start from.
    ///
    /// # Panics
    /// Panics if an environment variable holds an invalid value.
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        <Only as clap::Parser>::parse_from(["orderflow"]).config
    }
}

/// RabbitMQ queue type (`x-queue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueType {
    /// A single-node queue; the default.
    Classic,
    /// A replicated Raft queue for clustered RabbitMQ.
    Quorum,
}

impl QueueType {
    /// The value RabbitMQ expects in `x-queue-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < 16 {
            return Err("must be at least 16 characters".into());
        }
        Ok(Secret(s.to_owned()))
    }
}

/// `JWT_SECRET`: 16+ characters, and not one of [`PUBLISHED_JWT_SECRETS`].
///
/// # Errors
/// Why the value is refused.
pub fn parse_jwt_secret(s: &str) -> Result<Secret, String> {
    if PUBLISHED_JWT_SECRETS.contains(&s) {
        return Err("is a secret published with orderflow, so anyone could sign tokens with it: \
                    use a long random value, or leave JWT_SECRET unset to have one generated"
            .into());
    }
    s.parse()
}

/// A new password (`ADMIN_PASSWORD`), checked by [`account::check_new_password`].
fn parse_password(s: &str) -> Result<Secret, String> {
    account::check_new_password(s)?;
    Ok(Secret(s.to_owned()))
}

fn parse_email(s: &str) -> Result<String, String> {
    account::check_email(s.trim())?;
    Ok(s.trim().to_owned())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err(format!("`{s}` is not between 0 and 1")) }
}

fn parse_amqp_url(s: &str) -> Result<String, String> {
    s.parse::<lapin::uri::AMQPUri>()
        .map(|_| s.to_owned())
        .map_err(|e| format!("not an AMQP URL (amqp://user:password@host:port/vhost): {e}"))
}

fn parse_schedule(s: &str) -> Result<String, String> {
    cron::Schedule::from_str(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("`{s}` is not a cron schedule with a seconds field first: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_outside_zero_to_one_is_refused() {
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("abc").is_err());
        assert_eq!(parse_rate("0.25"), Ok(0.25));
    }

    #[test]
    fn an_amqp_url_is_checked_at_start_up() {
        assert!(parse_amqp_url("amqp://guest:guest@localhost:5672/%2f").is_ok());
        assert!(parse_amqp_url("http://nope").is_err());
    }

    #[test]
    fn a_schedule_needs_a_seconds_field() {
        assert!(parse_schedule("0 * * * * *").is_ok());
        assert!(parse_schedule("not a schedule").is_err());
    }

    #[test]
    fn a_published_jwt_secret_is_refused() {
        for published in PUBLISHED_JWT_SECRETS {
            assert!(parse_jwt_secret(published).is_err(), "{published}");
        }
        assert!(parse_jwt_secret("short").is_err());
        assert!(parse_jwt_secret("a-real-production-secret").is_ok());
    }

    #[test]
    fn the_demo_password_cannot_be_the_bootstrap_admin_password() {
        assert!(parse_password(account::DEMO_PASSWORD).is_err());
        assert!(parse_password("a proper passphrase").is_ok());
    }

    #[test]
    fn a_secret_is_hidden_from_debug_output() {
        let secret: Secret = "a-very-long-secret-value".parse().unwrap();
        assert!(!format!("{secret:?}").contains("very-long"));
        assert!("short".parse::<Secret>().is_err());
    }
}
