//! Building the process: the settings checked, PostgreSQL connected and migrated, the
//! listeners bound, the HTTP state made. Running what was built is [`crate::supervisor`]'s.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shared::{
    Config, db,
    messaging::{BrokerHealth, OutboxSignal, Publisher, Topology},
    metrics::Metrics,
};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::deps::Externals;
use crate::{
    accounts,
    board::LiveLog,
    http::{Accounts, AppState, DeadLetterSettings, TokenKeys},
    registry::Function,
    supervisor,
};

/// Which parts of orderflow this process runs (DESIGN.md section 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The HTTP API, the board, the outbox relay, every function and the cron: the whole system.
    All,
    /// The HTTP API, the board and the outbox relay.
    Api,
    /// The given functions (and cron), with the outbox relay (so a function's events leave at
    /// once) and health/metrics on `HTTP_ADDR`.
    Worker(Vec<Function>),
}

impl Role {
    /// The functions this role runs.
    pub(crate) fn functions(&self) -> &[Function] {
        match self {
            Role::All => &Function::ALL,
            Role::Api => &[],
            Role::Worker(functions) => functions,
        }
    }
}

/// How long start-up waits for PostgreSQL before giving up.
const DATABASE_PATIENCE: Duration = Duration::from_secs(60);

/// A started (bound, migrated) but not yet running orderflow process.
pub struct Application {
    pub(crate) config: Config,
    pub(crate) role: Role,
    pub(crate) topology: Topology,
    pub(crate) pool: PgPool,
    pub(crate) publisher: Arc<Publisher>,
    pub(crate) state: AppState,
    pub(crate) externals: Externals,
    pub(crate) http: TcpListener,
    pub(crate) board: Option<TcpListener>,
    /// The one the process's tracing writes to, when it was given one.
    pub(crate) live_log: Option<LiveLog>,
}

impl Application {
    /// Connects to PostgreSQL (creating the database and applying migrations) and binds the
    /// HTTP listener. The broker is not needed yet: without it the API still takes orders and
    /// the relay publishes them once it is back.
    ///
    /// # Errors
    /// PostgreSQL stayed unreachable, a migration failed, or the address is taken.
    pub async fn build(config: Config, role: Role) -> anyhow::Result<Self> {
        let externals = Externals::from_config(&config);
        Self::build_with(config, role, externals).await
    }

    /// [`Application::build`] with chosen payment gateway and clock.
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with(config: Config, role: Role, externals: Externals) -> anyhow::Result<Self> {
        let pool = db::connect_and_migrate(
            &config.database_url,
            db::main_pool_size(config.db_max_connections, !role.functions().is_empty()),
            DATABASE_PATIENCE,
            config.db_statement_timeout(),
        )
        .await?;
        let secret = accounts::token_secret(&pool, &config).await?;
        let tokens = Arc::new(TokenKeys::new(secret.expose(), Duration::from_secs(config.jwt_ttl_secs)));
        let topology = Topology::new(config.queue_prefix.clone(), config.queue_type);
        let publisher =
            Arc::new(Publisher::new(config.amqp_url.clone(), topology.clone()).with_timeout(config.broker_timeout()));
        let broker = BrokerHealth::default();
        broker.register("publisher", {
            let publisher = publisher.clone();
            move || publisher.is_connected()
        });
        let http = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("Failed to listen on HTTP_ADDR {}", config.http_addr))?;
        let board = match role {
            Role::All | Role::Api => Some(
                TcpListener::bind(config.board_addr)
                    .await
                    .with_context(|| format!("Failed to listen on BOARD_ADDR {}", config.board_addr))?,
            ),
            Role::Worker(_) => None,
        };
        let listening: Vec<SocketAddr> = [Some(&http), board.as_ref()]
            .into_iter()
            .flatten()
            .map(TcpListener::local_addr)
            .collect::<Result<_, _>>()?;
        let demo_password_allowed = accounts::prepare(&pool, &config, &listening).await?;
        let state = AppState {
            pool: pool.clone(),
            tokens,
            accounts: Accounts::new(demo_password_allowed),
            outbox: OutboxSignal::default(),
            broker,
            ready_needs_broker: matches!(role, Role::Worker(_)),
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: config.max_body_bytes,
            idempotency_ttl: config.idempotency_ttl(),
            outbox_lag_limit: Duration::from_secs(config.outbox_lag_limit_secs),
            dead_letters: DeadLetterSettings {
                amqp_url: config.amqp_url.clone(),
                topology: topology.clone(),
                broker_timeout: config.broker_timeout(),
            },
            passwords: crate::credentials::PasswordGate::from_config(&config),
        };
        Ok(Application { config, role, topology, pool, publisher, state, externals, http, board, live_log: None })
    }

    /// Feeds the board's live log stream from `live_log` (whose layer the process's tracing
    /// subscriber has); without it the stream stays empty.
    #[must_use]
    pub fn with_live_log(mut self, live_log: LiveLog) -> Self {
        self.live_log = Some(live_log);
        self
    }

    /// The address the board listens on, in the roles that serve it.
    pub fn board_addr(&self) -> Option<SocketAddr> {
        self.board.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the HTTP listener is bound to (useful with port 0).
    ///
    /// # Panics
    /// Never in practice: a bound listener has a local address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("a bound listener has an address")
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until `shutdown` is cancelled (or a part fails). Then intake stops (HTTP, queue
    /// consumers), in-flight jobs get up to `SHUTDOWN_TIMEOUT_SECS` to finish, and the relay
    /// publishes what they wrote before it stops too. See [`crate::supervisor`].
    ///
    /// # Errors
    /// The functions could not be set up (e.g. an invalid schedule).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        supervisor::run(self, shutdown).await
    }
}
