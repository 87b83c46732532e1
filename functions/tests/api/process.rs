//! `Binary`: the real `orderflow` binary as a child process, for what only the process as users
//! start it has (its tracing subscriber: the board's live log, JSON logs, the OTLP exporter). Its
//! own database and queue names, like `spawn_app`; its standard output kept for the test to read;
//! killed, and its database and queues removed, when dropped.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use shared::{Config, messaging::Topology};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{drop_database_and_topology, eventually, test_config};

/// A running `orderflow` (every role, payments approved at once) on two free local ports.
pub struct Binary {
    /// `127.0.0.1:<port>` of the API.
    pub http: String,
    /// `127.0.0.1:<port>` of the board.
    pub board: String,
    /// The test configuration its database, queue prefix and broker come from (the binary runs
    /// with its own defaults otherwise).
    pub config: Config,
    /// An HTTP client.
    pub client: reqwest::Client,
    lines: Arc<Mutex<Vec<String>>>,
    process: tokio::process::Child,
}

/// Two distinct free ports (both held while the second is chosen, so they differ).
fn two_free_ports() -> (u16, u16) {
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let second = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (first.local_addr().unwrap().port(), second.local_addr().unwrap().port())
}

impl Binary {
    /// Starts the binary with `RUST_LOG=warn` and then `env` (which may override it), and waits
    /// until it is ready. Nothing else of the test's environment that changes logs or tracing
    /// reaches it.
    pub async fn start(env: &[(&str, &str)]) -> Binary {
        let config = test_config();
        let (http_port, board_port) = two_free_ports();
        let (http, board) = (format!("127.0.0.1:{http_port}"), format!("127.0.0.1:{board_port}"));
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .env("DATABASE_URL", &config.database_url)
            .env("AMQP_URL", &config.amqp_url)
            .env("QUEUE_PREFIX", &config.queue_prefix)
            .env("HTTP_ADDR", &http)
            .env("BOARD_ADDR", &board)
            .env("PAYMENT_DELAY_MS", "0")
            .env("PAYMENT_SUCCESS_RATE", "1")
            .env("RUST_LOG", "warn")
            .env_remove("LOG_FORMAT")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_SDK_DISABLED")
            .env_remove("OTEL_TRACES_SAMPLER")
            // Would override how mimalloc was built (transparent huge pages off).
            .env_remove("MIMALLOC_ALLOW_THP")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        keep_lines(process.stdout.take().unwrap(), lines.clone());
        keep_lines(process.stderr.take().unwrap(), lines.clone());
        let mut binary = Binary { http, board, config, client: reqwest::Client::new(), lines, process };
        let started = tokio::time::Instant::now();
        loop {
            let ready = binary.client.get(binary.url("/health/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return binary;
            }
            let exited = binary.process.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(60),
                "orderflow did not become ready ({exited:?}); its output:\n{}",
                binary.output().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id.
    #[cfg(feature = "mimalloc")]
    pub fn pid(&self) -> u32 {
        self.process.id().expect("the binary is running")
    }

    /// `http://<api>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The lines written to standard output so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines of standard output that are JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.output().iter().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// A token of the development admin (accepted here: the binary listens on loopback only).
    pub async fn admin_token(&self) -> String {
        let body = json!({ "email": "admin@example.com", "password": "admin123" });
        let login = self.client.post(self.url("/api/auth/login")).json(&body).send().await.unwrap();
        assert_eq!(login.status(), 200, "the development admin's login");
        let login: Value = login.json().await.unwrap();
        login["token"].as_str().unwrap().to_owned()
    }

    /// A pool on the binary's database.
    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.config.database_url).await.unwrap()
    }

    /// `GET` an API path with `token`: the JSON body, if the request and its decoding worked.
    pub async fn get_json(&self, token: &str, path: &str) -> Option<Value> {
        self.client.get(self.url(path)).bearer_auth(token).send().await.ok()?.json().await.ok()
    }

    /// `GET` a board path (under `/api/v1`) with the development admin's credentials.
    pub async fn board_get(&self, path: &str) -> reqwest::Response {
        let url = format!("http://{}/api/v1{path}", self.board);
        self.client.get(url).basic_auth("admin@example.com", Some("admin123")).send().await.unwrap()
    }

    /// Waits until order `id` is `status`, as the API reports it.
    pub async fn await_order_status(&self, token: &str, id: i64, status: &str) {
        eventually(&format!("order {id} to be {status}"), Duration::from_secs(30), || async {
            let order = self.get_json(token, &format!("/api/orders/{id}")).await?;
            (order["status"] == status).then_some(())
        })
        .await;
    }
}

/// Appends each line `output` writes to `lines`, until it closes.
fn keep_lines(output: impl tokio::io::AsyncRead + Unpin + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    let mut output = BufReader::new(output).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = output.next_line().await {
            lines.lock().unwrap().push(line);
        }
    });
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        let database = self.config.database_url.rsplit('/').next().unwrap().to_owned();
        drop_database_and_topology(database, Topology::new(self.config.queue_prefix.clone(), self.config.queue_type));
    }
}
