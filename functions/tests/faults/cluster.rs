//! A cluster of real `orderflow` processes on the real PostgreSQL and RabbitMQ, with its own
//! database and queue names, plus the levers to hurt it and the invariants to check after.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use serde_json::{Value, json};
use shared::{config::QueueType, events::EventType, messaging::Topology};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::process::{Child, Command};
use uuid::Uuid;

const POSTGRES: &str = "postgres://postgres:postgres@127.0.0.1:5432";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The longest any one call of the suite (HTTP, AMQP, a command) may take: a hung call fails
/// the case instead of outlasting every `until` deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to the broker for the suite's own checks, bounded by [`CALL_TIMEOUT`].
async fn connect_broker() -> Connection {
    tokio::time::timeout(CALL_TIMEOUT, Connection::connect(AMQP, ConnectionProperties::default()))
        .await
        .expect("connecting to RabbitMQ timed out")
        .expect("RabbitMQ is not reachable")
}

/// One `orderflow` process.
pub struct Process {
    /// `api`, `worker` or `all`.
    pub role: String,
    child: Child,
    /// Its HTTP address.
    pub http: String,
    log: PathBuf,
}

/// A set of processes sharing one database and one queue prefix.
pub struct Cluster {
    name: String,
    env: HashMap<String, String>,
    database: String,
    /// The cluster's queue names.
    pub topology: Topology,
    /// The cluster's database.
    pub pool: PgPool,
    /// The processes, in start order.
    pub processes: Vec<Process>,
    client: reqwest::Client,
    token: Option<String>,
    logs: PathBuf,
}

/// Two distinct free ports (both held while the second is chosen, so they differ).
fn two_free_ports() -> (u16, u16) {
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let second = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (first.local_addr().unwrap().port(), second.local_addr().unwrap().port())
}

impl Cluster {
    /// A cluster for case `name`, with settings `env` on top of fast defaults. Starts nothing.
    pub async fn new(name: &str, env: &[(&str, &str)]) -> Cluster {
        let id = Uuid::new_v4().simple().to_string();
        let database = format!("orderflow_fault_{}", &id[..12]);
        let prefix = format!("fault-{}-", &id[..8]);
        let mut settings: HashMap<String, String> = [
            ("DATABASE_URL", format!("{POSTGRES}/{database}")),
            ("AMQP_URL", AMQP.to_owned()),
            ("QUEUE_PREFIX", prefix.clone()),
            ("PAYMENT_DELAY_MS", "1000".to_owned()),
            ("PAYMENT_SUCCESS_RATE", "1".to_owned()),
            ("RETRY_BASE_MS", "200".to_owned()),
            ("SHUTDOWN_TIMEOUT_SECS", "10".to_owned()),
            ("OUTBOX_POLL_MS", "200".to_owned()),
            ("DB_MAX_CONNECTIONS", "5".to_owned()),
            ("RUST_LOG", "info,sqlx::postgres::notice=warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in env {
            settings.insert((*key).to_owned(), (*value).to_owned());
        }
        let queue_type = if settings.get("QUEUE_TYPE").map(String::as_str) == Some("quorum") {
            QueueType::Quorum
        } else {
            QueueType::Classic
        };
        let mut admin = PgConnection::connect(&format!("{POSTGRES}/postgres")).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"create database "{database}""#))).execute(&mut admin).await.unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect(&format!("{POSTGRES}/{database}"))
            .await
            .unwrap();
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults").join(name);
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).unwrap();
        Cluster {
            name: name.to_owned(),
            env: settings,
            database,
            topology: Topology::new(prefix, queue_type),
            pool,
            processes: Vec::new(),
            client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
            token: None,
            logs,
        }
    }

    /// Starts `orderflow <role>` and waits until it is ready. Returns its index.
    pub async fn start(&mut self, role: &str) -> usize {
        let index = self.spawn(role, &[]);
        self.wait_ready(index, Duration::from_secs(60)).await;
        index
    }

    /// Starts `orderflow <role>` with extra settings, without waiting. Returns its index.
    pub fn spawn(&mut self, role: &str, extra: &[(&str, &str)]) -> usize {
        let (http_port, board_port) = two_free_ports();
        let (http, board) = (format!("127.0.0.1:{http_port}"), format!("127.0.0.1:{board_port}"));
        let index = self.processes.len();
        let log = self.logs.join(format!("{index}-{role}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderflow"));
        command
            .arg(role)
            .envs(&self.env)
            .env("HTTP_ADDR", &http)
            .env("BOARD_ADDR", &board)
            .env("LOG_FORMAT", "pretty")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true);
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command.spawn().expect("could not start orderflow");
        self.processes.push(Process { role: role.to_owned(), child, http: format!("http://{http}"), log });
        index
    }

    /// Waits until process `index` answers `/health/ready` with 200.
    pub async fn wait_ready(&self, index: usize, timeout: Duration) {
        let url = format!("{}/health/ready", self.processes[index].http);
        self.until(&format!("process {index} to be ready"), timeout, async || {
            self.client.get(&url).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// The readiness status code of process `index` (0 when it does not answer).
    pub async fn readiness(&self, index: usize) -> u16 {
        let url = format!("{}/health/ready", self.processes[index].http);
        self.client.get(&url).send().await.map_or(0, |r| r.status().as_u16())
    }

    /// Polls `check` every 200 ms until it holds, or fails the case after `timeout`.
    pub async fn until(&self, what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check().await {
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("[{}] timed out after {timeout:?} waiting for {what}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn api(&self) -> &Process {
        self.processes.iter().find(|p| p.role == "api" || p.role == "all").expect("the cluster has no API process")
    }

    /// Sends an admin's request to the API (`body` as JSON when given). Returns the status and
    /// the JSON body (`null` when there is none).
    #[allow(dead_code, reason = "used by the abuse suite (its relay cases), not by the fault suite")]
    pub async fn admin_request(&mut self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.token().await;
        let mut request = self.client.request(method, format!("{}{path}", self.api().http)).bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// An admin's token from the API (logged in once, then reused).
    pub async fn token(&mut self) -> String {
        if let Some(token) = &self.token {
            return token.clone();
        }
        let response: Value = self
            .client
            .post(format!("{}/api/auth/login", self.api().http))
            .json(&json!({ "email": "admin@example.com", "password": "admin123" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = response["token"].as_str().unwrap().to_owned();
        self.token = Some(token.clone());
        token
    }

    /// Creates `count` orders over HTTP (each must be accepted with 201). Returns their ids.
    pub async fn create_orders(&mut self, count: usize) -> Vec<i64> {
        let token = self.token().await;
        let url = format!("{}/api/orders", self.api().http);
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let response = self
                .client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "userId": 1, "productId": 2, "quantity": 1, "price": 10 }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 201, "[{}] create refused", self.name);
            ids.push(response.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
        }
        ids
    }

    /// Runs `orderflow <args>` (a CLI command) with the cluster's settings; fails the case if it
    /// fails. Returns its standard output.
    #[allow(dead_code, reason = "used by the abuse suite (its relay cases), not by the fault suite")]
    pub async fn cli(&self, args: &[&str]) -> String {
        let output = tokio::time::timeout(
            CALL_TIMEOUT,
            Command::new(env!("CARGO_BIN_EXE_orderflow")).args(args).envs(&self.env).kill_on_drop(true).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("orderflow {args:?} did not finish within {CALL_TIMEOUT:?}"))
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "orderflow {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Sends SIGKILL to process `index`.
    pub async fn kill(&mut self, index: usize) {
        let process = &mut self.processes[index];
        process.child.kill().await.unwrap();
        process.role = format!("{} (killed)", process.role);
    }

    /// Sends SIGTERM to process `index` and returns how long it took to exit, and its status.
    pub async fn terminate(&mut self, index: usize) -> (Duration, std::process::ExitStatus) {
        let process = &mut self.processes[index];
        let pid = process.child.id().expect("the process is running");
        let started = Instant::now();
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(60), process.child.wait())
            .await
            .expect("the process did not exit within 60 s of SIGTERM")
            .unwrap();
        process.role = format!("{} (exited)", process.role);
        (started.elapsed(), exit)
    }

    /// Publishes a raw message (persistent, confirmed) to one of the cluster's queues.
    pub async fn publish(&self, queue: &str, body: &[u8], message_id: &str) {
        self.publish_with_headers(queue, body, message_id, FieldTable::default()).await;
    }

    /// [`Cluster::publish`] with these AMQP headers.
    pub async fn publish_with_headers(&self, queue: &str, body: &[u8], message_id: &str, headers: FieldTable) {
        let connection = connect_broker().await;
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message_id.into())
            .with_correlation_id("fault-suite".into())
            .with_headers(headers);
        let confirm = channel
            .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, properties)
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "the broker refused the message");
        let _ = connection.close(200, "done".into()).await;
    }

    /// Ready messages in a queue.
    pub async fn depth(&self, queue: &str) -> u32 {
        let connection = connect_broker().await;
        let channel = connection.create_channel().await.unwrap();
        let depth = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            // A missing queue is a failure, not an empty queue: the checks must not pass vacuously.
            .unwrap_or_else(|e| panic!("[{}] cannot read the depth of {queue}: {e}", self.name))
            .message_count();
        let _ = connection.close(200, "done".into()).await;
        depth
    }

    /// The status of order `id`.
    pub async fn status_of(&self, id: i64) -> String {
        sqlx::query_scalar("select status from orders where id = $1").bind(id).fetch_one(&self.pool).await.unwrap()
    }

    /// A scalar from the cluster's database.
    pub async fn scalar(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// Waits until the system has settled: no order left Pending (or Processing, when every
    /// payment succeeds), every outbox row published, every main queue empty.
    pub async fn settle(&self, timeout: Duration, processing_allowed: bool) {
        let queues: Vec<String> = EventType::ALL.iter().map(|e| self.topology.queue(*e)).collect();
        self.until("the system to settle", timeout, async || {
            let unfinished = if processing_allowed {
                "select count(*) from orders where status = 'Pending'"
            } else {
                "select count(*) from orders where status in ('Pending', 'Processing')"
            };
            if self.scalar(unfinished).await > 0
                || self.scalar("select count(*) from outbox where sent_at is null").await > 0
            {
                return false;
            }
            for queue in &queues {
                if self.depth(queue).await > 0 {
                    return false;
                }
            }
            // Notifications trail their events by one hop.
            self.scalar(
                "select count(*) from orders o where (o.status = 'Completed' or o.status = 'Expired')
                 and not exists (select 1 from notifications n where n.order_id = o.id)",
            )
            .await
                == 0
        })
        .await;
    }

    /// The invariants every case ends with, and no message dead-lettered.
    pub async fn check_invariants(&self) {
        self.check_invariants_with_dead_letters(0).await;
    }

    /// The invariants every case ends with, where `order_created` messages are expected in
    /// `order-created-event_error` (and none in the other error queues).
    pub async fn check_invariants_with_dead_letters(&self, order_created: u32) {
        let checks: [(&str, &'static str); 6] = [
            (
                "orders in an illegal state",
                "select count(*) from orders where status not in ('Pending', 'Processing', 'Completed', 'Expired')",
            ),
            (
                "Completed orders without exactly one OrderCompleted notification",
                "select count(*) from orders o where o.status = 'Completed' and
                 (select count(*) from notifications n where n.order_id = o.id and n.type = 'OrderCompleted') <> 1",
            ),
            (
                "Expired orders without exactly one OrderExpired notification",
                "select count(*) from orders o where o.status = 'Expired' and
                 (select count(*) from notifications n where n.order_id = o.id and n.type = 'OrderExpired') <> 1",
            ),
            (
                "notifications whose order is not in their state",
                "select count(*) from notifications n join orders o on o.id = n.order_id
                 where (n.type = 'OrderCompleted' and o.status <> 'Completed')
                    or (n.type = 'OrderExpired' and o.status <> 'Expired')",
            ),
            ("unsent outbox rows", "select count(*) from outbox where sent_at is null"),
            (
                "orders with more than one completion or expiry event",
                "select count(*) from (select order_id, event_type from outbox
                 where event_type <> 'OrderCreated' group by 1, 2 having count(*) > 1) as twice",
            ),
        ];
        for (what, sql) in checks {
            let found = self.scalar(sql).await;
            if found != 0 {
                self.dump_logs();
                panic!("[{}] invariant broken: {found} {what}", self.name);
            }
        }
        for event in EventType::ALL {
            let queue = self.topology.queue(event);
            let depth = self.depth(&queue).await;
            assert_eq!(depth, 0, "[{}] {queue} still holds {depth} messages", self.name);
            let error_queue = self.topology.error_queue(event);
            let expected = if event == EventType::OrderCreated { order_created } else { 0 };
            let dead = self.depth(&error_queue).await;
            if dead != expected {
                self.dump_logs();
                panic!("[{}] {error_queue} holds {dead} messages, expected {expected}", self.name);
            }
        }
    }

    /// How many lines of process `index`'s log contain `needle`.
    pub fn log_lines_containing(&self, index: usize, needle: &str) -> usize {
        std::fs::read_to_string(&self.processes[index].log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Prints the tail of every process's log (on failure).
    pub fn dump_logs(&self) {
        for process in &self.processes {
            let text = std::fs::read_to_string(&process.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- {} ({}) -----", process.log.display(), process.role);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    /// The operating-system id of process `index`, while it runs.
    #[allow(dead_code, reason = "used by the abuse suite (its memory cases), not by the fault suite")]
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.processes[index].child.id()
    }
}

impl Drop for Cluster {
    /// Stops the processes, drops the database and deletes the queues, even after a failure.
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.child.start_kill();
        }
        let (database, topology) = (self.database.clone(), self.topology.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        r#"drop database if exists "{database}" with (force)"#
                    )))
                    .execute(&mut admin)
                    .await;
                }
                if let Ok(connection) = Connection::connect(AMQP, ConnectionProperties::default()).await
                    && let Ok(channel) = connection.create_channel().await
                {
                    for queue in topology.all_queues() {
                        let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
                    }
                    let _ = channel
                        .exchange_delete(
                            topology.dead_letter_exchange().as_str().into(),
                            ExchangeDeleteOptions::default(),
                        )
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Runs a command, failing the case if it fails.
pub async fn run(program: &str, args: &[&str]) {
    let output = tokio::time::timeout(CALL_TIMEOUT, Command::new(program).args(args).kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within {CALL_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes sure RabbitMQ and PostgreSQL run again when a case ends, whatever happened in it (the
/// RabbitMQ application started, its memory watermark back at the default 0.4, which the abuse
/// suite's alarm case lowers): the suites must leave the services running.
pub struct ServicesGuard;

impl Drop for ServicesGuard {
    fn drop(&mut self) {
        for args in [&["-q", "start_app"][..], &["-q", "set_vm_memory_high_watermark", "0.4"]] {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned());
        if let Some(version) = version {
            let _ = std::process::Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &version, "main", "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The PostgreSQL cluster version (the directory under /etc/postgresql).
pub fn postgres_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .expect("PostgreSQL is not installed as a Debian cluster")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("no PostgreSQL cluster")
}
