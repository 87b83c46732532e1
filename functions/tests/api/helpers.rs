//! `spawn_app`: a whole orderflow process inside the test, on its own database and its own
//! queue names, against the real PostgreSQL and RabbitMQ; torn down when the test ends.

use std::{
    future::Future,
    sync::{Arc, LazyLock},
    time::Duration,
};

use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    message::BasicGetMessage,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::FieldTable,
};
use orderflow::{
    app::{Application, Externals, Role},
    board::LiveLog,
    http::TokenKeys,
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shared::{Config, events::EventType, messaging::Topology, payments::PaymentGateway};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// PostgreSQL server the tests use (without a database name).
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".into())
}

/// RabbitMQ the tests use.
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

// Logs from the app under test are shown with TEST_LOG=1 (quiet by default).
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let _ = shared::telemetry::init(
            shared::config::LogFormat::Pretty,
            &filter,
            shared::telemetry::Export::NONE,
            Vec::new(),
        );
    }
});

/// A running orderflow and everything a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The board's `http://127.0.0.1:<port>`, in roles that serve it.
    pub board_address: Option<String>,
    /// The app's own database.
    pub pool: PgPool,
    /// The configuration it runs with.
    pub config: Config,
    /// An HTTP client.
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    run: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    database: String,
}

/// A configuration with a fresh database name and queue prefix, listening on free ports.
pub fn test_config() -> Config {
    let id = Uuid::new_v4().simple().to_string();
    let mut config = Config::from_env();
    config.database_url = format!("{}/orderflow_test_{}", postgres_server(), &id[..16]);
    config.amqp_url = amqp_url();
    config.queue_prefix = format!("test-{}-", &id[..12]);
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.board_addr = "127.0.0.1:0".parse().unwrap();
    config.db_max_connections = 5;
    config.outbox_poll_ms = 100;
    config.shutdown_timeout_secs = 5;
    config
}

/// Starts orderflow's API (HTTP and outbox relay, no functions) with the test configuration.
pub async fn spawn_app() -> TestApp {
    app().spawn().await
}

/// Starts orderflow's API with the test configuration changed by `customize`.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    app().config(customize).spawn().await
}

/// A test app to configure and spawn: the API role, payments always approved after no delay,
/// fast retries, the system clock.
pub fn app() -> TestAppBuilder {
    let mut config = test_config();
    config.payment_delay_ms = 0;
    config.payment_success_rate = 1.0;
    config.retry_base_ms = 100;
    TestAppBuilder { config, role: Role::Api, payments: None, predeclare: true, live_log: None }
}

/// See [`app`].
pub struct TestAppBuilder {
    config: Config,
    role: Role,
    payments: Option<Arc<dyn PaymentGateway>>,
    predeclare: bool,
    live_log: Option<LiveLog>,
}

impl TestAppBuilder {
    /// Runs these parts of orderflow.
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Runs everything: API, relay, functions and cron.
    pub fn with_functions(self) -> Self {
        self.role(Role::All)
    }

    /// Changes the configuration.
    pub fn config(mut self, customize: impl FnOnce(&mut Config)) -> Self {
        customize(&mut self.config);
        self
    }

    /// Leaves declaring the queues to the app's start-up, as in production.
    pub fn without_predeclared_topology(mut self) -> Self {
        self.predeclare = false;
        self
    }

    /// Uses this payment gateway instead of the simulator at `PAYMENT_SUCCESS_RATE`.
    pub fn payments(mut self, payments: Arc<dyn PaymentGateway>) -> Self {
        self.payments = Some(payments);
        self
    }

    /// Serves this live log on the board (no tracing layer feeds it here: the test process has
    /// one global subscriber).
    pub fn live_log(mut self, live_log: LiveLog) -> Self {
        self.live_log = Some(live_log);
        self
    }

    /// Starts it.
    pub async fn spawn(self) -> TestApp {
        LazyLock::force(&TRACING);
        let TestAppBuilder { config, role, payments, predeclare, live_log } = self;
        // Declare the queues up front, so a test may publish or count before the app's own
        // connections have declared them.
        if predeclare {
            let topology = Topology::new(config.queue_prefix.clone(), config.queue_type);
            let channel = amqp_channel().await.expect("RabbitMQ is not reachable");
            topology.declare(&channel).await.expect("could not declare the test topology");
        }
        let mut externals = Externals::from_config(&config);
        if let Some(payments) = payments {
            externals.payments = payments;
        }
        let database = config.database_url.rsplit('/').next().unwrap().to_owned();
        let mut app =
            Application::build_with(config.clone(), role, externals).await.expect("orderflow failed to start");
        if let Some(live_log) = live_log {
            app = app.with_live_log(live_log);
        }
        let address = format!("http://{}", app.http_addr());
        let board_address = app.board_addr().map(|addr| format!("http://{addr}"));
        let pool = app.pool().clone();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(app.run(shutdown.clone()));
        TestApp {
            address,
            board_address,
            pool,
            config,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            shutdown,
            run: Some(run),
            database,
        }
    }
}

impl TestApp {
    /// The queue names of this app.
    pub fn topology(&self) -> Topology {
        Topology::new(self.config.queue_prefix.clone(), self.config.queue_type)
    }

    /// The queue an event travels on in this app.
    pub fn queue(&self, event: EventType) -> String {
        self.topology().queue(event)
    }

    /// A URL on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `GET` a board path (under `/api/v1`) with the admin's credentials.
    pub async fn board_get(&self, path: &str) -> Response {
        let board = self.board_address.as_ref().expect("this app serves no board");
        self.client
            .get(format!("{board}/api/v1{path}"))
            .basic_auth("admin@example.com", Some("admin123"))
            .send()
            .await
            .unwrap()
    }

    /// The journal row of a message, as JSON, if it exists.
    pub async fn journal_row(&self, message_id: &str) -> Option<Value> {
        sqlx::query_scalar("select to_jsonb(j) from job_journal j where message_id = $1")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    /// The id of the message the order's creation queued (its outbox row's).
    pub async fn message_id_of(&self, order_id: i64) -> String {
        sqlx::query_scalar("select message_id::text from outbox where order_id = $1")
            .bind(order_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until the journal shows the message's job in `status` (e.g. `Done`: its handler
    /// has finished), and returns the row.
    pub async fn job_in_status(&self, message_id: &str, status: &str) -> Value {
        eventually(&format!("the job of {message_id} to be {status}"), Duration::from_secs(15), || async {
            self.journal_row(message_id).await.filter(|row| row["status"] == status)
        })
        .await
    }

    /// `POST /api/auth/login` with `email` and `password`.
    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in as the seeded admin and returns the bearer token.
    pub async fn admin_token(&self) -> String {
        self.token_of("admin@example.com", "admin123").await
    }

    /// Logs in and returns the bearer token.
    pub async fn token_of(&self, email: &str, password: &str) -> String {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {email} failed");
        response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    }

    /// Creates a user over `POST /api/users` as the seeded admin and returns its id.
    pub async fn create_user(&self, email: &str, password: &str, is_admin: bool) -> i64 {
        let response = self
            .client
            .post(self.url("/api/users"))
            .bearer_auth(self.admin_token().await)
            .json(&json!({ "email": email, "password": password, "isAdmin": is_admin }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "creating {email} failed");
        response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// The secret this app signs tokens with: `JWT_SECRET`, or else the one it generated and
    /// keeps in its database.
    pub async fn jwt_secret(&self) -> String {
        match &self.config.jwt_secret {
            Some(secret) => secret.expose().to_owned(),
            None => sqlx::query_scalar("select value from settings where name = 'jwt_secret'")
                .fetch_one(&self.pool)
                .await
                .unwrap(),
        }
    }

    /// Keys that sign tokens as this app does, valid for a minute.
    pub async fn token_keys(&self) -> TokenKeys {
        TokenKeys::new(&self.jwt_secret().await, Duration::from_secs(60))
    }

    /// `POST /api/orders` with a JSON body, as the admin.
    pub async fn create_order(&self, token: &str, body: &Value) -> Response {
        self.client.post(self.url("/api/orders")).bearer_auth(token).json(body).send().await.unwrap()
    }

    /// `GET` a path with a token.
    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    /// Rows in a table (tests only pass literal table names).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(run) = self.run.take() {
            tokio::time::timeout(Duration::from_secs(15), run)
                .await
                .expect("orderflow did not stop in time")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestApp {
    /// Drops the database and deletes the queues, even when the test failed.
    fn drop(&mut self) {
        self.shutdown.cancel();
        drop_database_and_topology(self.database.clone(), self.topology());
    }
}

/// Drops a test database and deletes a test topology, from synchronous code (a `Drop`), on a
/// thread of its own so that it works inside and outside a runtime.
pub fn drop_database_and_topology(database: String, topology: Topology) {
    drop_database_and(database, Some(topology));
}

/// A scratch database name on the test server, dropped when it goes out of scope (the test
/// failed or not). Nothing creates the database: the test does.
pub struct ScratchDatabase(String);

impl ScratchDatabase {
    /// A fresh name, as [`test_config`] makes them.
    pub fn new() -> Self {
        ScratchDatabase(format!("orderflow_test_{}", &Uuid::new_v4().simple().to_string()[..16]))
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("{}/{}", postgres_server(), self.0)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        drop_database_and(self.0.clone(), None);
    }
}

fn drop_database_and(database: String, topology: Option<Topology>) {
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            if let Ok(mut conn) = PgConnection::connect(&format!("{}/postgres", postgres_server())).await {
                let _ =
                    sqlx::query(sqlx::AssertSqlSafe(format!(r#"drop database if exists "{database}" with (force)"#)))
                        .execute(&mut conn)
                        .await;
            }
            if let Some(topology) = topology {
                delete_topology(&topology).await;
            }
        });
    });
    let _ = cleanup.join();
}

/// Deletes every queue and exchange of a topology.
pub async fn delete_topology(topology: &Topology) {
    let Ok(channel) = amqp_channel().await else { return };
    for queue in topology.all_queues() {
        let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    }
    let _ = channel
        .exchange_delete(topology.dead_letter_exchange().as_str().into(), ExchangeDeleteOptions::default())
        .await;
}

/// A fresh channel on the test broker.
pub async fn amqp_channel() -> lapin::Result<Channel> {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
    connection.create_channel().await
}

/// How many ready messages a queue holds.
pub async fn queue_depth(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

/// Takes one message off a queue (acknowledged at once), if any.
pub async fn take_message(channel: &Channel, queue: &str) -> Option<BasicGetMessage> {
    channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A valid create-order body.
pub fn order_body() -> Value {
    json!({ "userId": 1, "productId": 2, "quantity": 3, "price": 9.99 })
}

/// Publishes a raw body to a queue, persistent and confirmed, with a message id.
pub async fn publish_raw(queue: &str, body: &[u8], message_id: &str) {
    publish_with_headers(queue, body, message_id, FieldTable::default()).await;
}

/// Publishes a raw body to a queue as [`publish_raw`] does, with these AMQP headers.
pub async fn publish_with_headers(queue: &str, body: &[u8], message_id: &str, headers: FieldTable) {
    let channel = amqp_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(message_id.into())
        .with_correlation_id("test".into())
        .with_headers(headers);
    channel
        .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, properties)
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A Pending order of user 1 for product 1, written as the API writes one (with its
/// `OrderCreated` outbox row).
pub async fn pending_order(pool: &PgPool) -> i64 {
    let new = shared::domain::NewOrder::parse(1, 1, 1, "5.00".parse().unwrap(), None).unwrap();
    let order = shared::db::orders::insert_order(pool, &new, Uuid::now_v7(), "test", (None, None), None).await;
    order.unwrap().id
}

/// Runs the retention sweep once, failing the test if it errs or does not end within a minute:
/// a pruning loop that never ends fails with the test's name instead of hanging the run.
/// Published events no worker started are named as the app names them.
pub async fn sweep(app: &TestApp, settings: shared::retention::RetentionSettings) {
    let unstarted = orderflow::registry::unstarted(&app.topology(), app.config.max_attempts());
    tokio::time::timeout(Duration::from_secs(60), shared::retention::sweep(&app.pool, settings, &unstarted))
        .await
        .expect("the retention sweep did not end within 60 s")
        .unwrap();
}

/// An order's status.
pub async fn order_status(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("select status from orders where id = $1").bind(id).fetch_one(pool).await.unwrap()
}

/// Outbox rows of one event type.
pub async fn outbox_rows(pool: &PgPool, event_type: &str) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where event_type = $1")
        .bind(event_type)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Notifications of one order and type.
pub async fn notifications_of(pool: &PgPool, order_id: i64, kind: &str) -> i64 {
    sqlx::query_scalar("select count(*) from notifications where order_id = $1 and type = $2")
        .bind(order_id)
        .bind(kind)
        .fetch_one(pool)
        .await
        .unwrap()
}
