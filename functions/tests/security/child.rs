//! The real `orderflow` binary as a child process, on its own database and queue names and free
//! loopback ports, for tests that measure the process (its memory, from `/proc`). Killed, and
//! its database and queues deleted, when dropped.

use std::{net::TcpListener, path::PathBuf, process::Stdio, time::Duration};

use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::helpers::{amqp_url, drop_database_and_topology, eventually, postgres_server};

/// A running `orderflow api` child process.
pub struct ChildApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// Its log (stdout and stderr), kept under the build output for a failed test.
    pub log: PathBuf,
    process: Child,
    database: String,
    queue_prefix: String,
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl ChildApp {
    /// Starts `orderflow api` with the test settings plus `settings` (name, value), and waits
    /// until it answers `/health/live`.
    pub async fn start(settings: &[(&str, &str)]) -> ChildApp {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("orderflow_test_{}", &id[..16]);
        let queue_prefix = format!("test-{}-", &id[..12]);
        let http_addr = format!("127.0.0.1:{}", free_port());
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("orderflow-child-{}.log", &id[..12]));
        let output = std::fs::File::create(&log).unwrap();
        let process = Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .arg("api")
            .env_clear()
            .env("DATABASE_URL", format!("{}/{database}", postgres_server()))
            .env("AMQP_URL", amqp_url())
            .env("QUEUE_PREFIX", &queue_prefix)
            .env("HTTP_ADDR", &http_addr)
            .env("BOARD_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("DB_MAX_CONNECTIONS", "5")
            .env("SHUTDOWN_TIMEOUT_SECS", "5")
            .env("RUST_LOG", "info")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start the orderflow binary");
        let app = ChildApp { address: format!("http://{http_addr}"), log, process, database, queue_prefix };
        let client = reqwest::Client::new();
        let live = app.url("/health/live");
        eventually(&format!("orderflow to start (log: {})", app.log.display()), Duration::from_secs(60), || async {
            let response = client.get(&live).timeout(Duration::from_secs(2)).send().await.ok()?;
            (response.status() == StatusCode::OK).then_some(())
        })
        .await;
        app
    }

    /// A URL on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The process id, to read `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.process.id().expect("the child has exited")
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`: now, `VmHWM`: the peak so far).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }
}

impl Drop for ChildApp {
    /// Kills the process, then drops its database and deletes its queues.
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        let topology = shared::messaging::Topology::new(self.queue_prefix.clone(), shared::config::QueueType::Classic);
        drop_database_and_topology(self.database.clone(), topology);
    }
}
