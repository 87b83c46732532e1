//! The two servers the load is sent to, each a process of its own: the release `orderflow`
//! binary as users start it, and the baseline (this benchmark run again with
//! `--baseline-server`, see `baseline.rs`). Both are reached over HTTP on loopback.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    env::{AMQP, Env},
    load::CONCURRENCY,
    rss,
};

/// What [`Server::cpu_split`] measures, in its order.
pub const CPU_PARTS: [&str; 3] = ["the server process", "PostgreSQL (all backends)", "RabbitMQ"];

/// CPU microseconds per unit of work (`n` of them) between two [`Server::cpu_split`] readings.
pub fn cpu_us_per(before: [f64; 3], after: [f64; 3], n: usize) -> [f64; 3] {
    [0, 1, 2].map(|i| (after[i] - before[i]) * 1e6 / n as f64)
}

/// A running server process and a client for its HTTP API.
pub struct Server {
    child: tokio::process::Child,
    pid: u32,
    /// Its HTTP API, `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client with room for `CONCURRENCY` idle connections.
    pub client: reqwest::Client,
    /// The bearer token the load sends (the admin's for orderflow; the baseline ignores it).
    pub token: String,
    /// Seconds from the spawn until `/health/ready` answered 200.
    pub ready_after: f64,
}

/// A free port on loopback, as `127.0.0.1:<port>`.
fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// The orderflow binary the benchmark starts: the release build cargo built beside this
/// benchmark, or `BENCH_ORDERFLOW_BIN` (a benchmark-only build, for the profile).
fn orderflow_binary() -> String {
    std::env::var("BENCH_ORDERFLOW_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_orderflow").to_owned())
}

/// Starts `orderflow <role>` on `env` with its default settings, except `settings` and what a
/// benchmark must set (where its database, broker and ports are). Its environment is otherwise
/// empty, so nothing of the caller's leaks in, but for `BENCH_SET_<NAME>=<value>`, passed on as
/// `<NAME>=<value>` (to switch parts off for the profile). Its log goes to /dev/null, formatted
/// as shipped (`RUST_LOG` and `LOG_FORMAT` at their defaults). The load logs in as the admin.
pub async fn orderflow(env: &Env, role: &str, settings: &[(&str, &str)]) -> Server {
    let mut server = orderflow_not_logged_in(env, role, settings).await;
    server.token = admin_token(&server.client, &server.base).await;
    server
}

/// [`orderflow`] without the admin's login (whose password check would add to its memory).
pub async fn orderflow_not_logged_in(env: &Env, role: &str, settings: &[(&str, &str)]) -> Server {
    let http = free_addr();
    let mut command = tokio::process::Command::new(orderflow_binary());
    command
        .arg(role)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", env.url())
        .env("AMQP_URL", AMQP)
        .env("QUEUE_PREFIX", env.queue_prefix())
        .env("HTTP_ADDR", &http)
        .env("BOARD_ADDR", free_addr())
        .envs(settings.iter().copied())
        .envs(std::env::vars().filter_map(|(k, v)| k.strip_prefix("BENCH_SET_").map(|k| (k.to_owned(), v))));
    spawn(command, http).await
}

/// Starts the baseline server in `mode` (`insert`, `relay` or `pipeline`, see
/// `baseline::serve`) on `env`, each payment taking `payment_delay_ms`.
pub async fn baseline(env: &Env, mode: &str, payment_delay_ms: u64) -> Server {
    let http = free_addr();
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--baseline-server", mode])
        .env("DATABASE_URL", env.url())
        .env("AMQP_URL", AMQP)
        .env("QUEUE_PREFIX", env.queue_prefix())
        .env("HTTP_ADDR", &http)
        .env("PAYMENT_DELAY_MS", payment_delay_ms.to_string());
    spawn(command, http).await
}

async fn spawn(mut command: tokio::process::Command, http: String) -> Server {
    let started = Instant::now();
    let child = command.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).spawn().unwrap();
    let pid = child.id().unwrap();
    let base = format!("http://{http}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    while !client.get(format!("{base}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready_after = started.elapsed().as_secs_f64();
    Server { child, pid, base, client, token: String::new(), ready_after }
}

/// The seeded admin's bearer token from the orderflow at `base` (on loopback, where the demo
/// password is accepted).
async fn admin_token(client: &reqwest::Client, base: &str) -> String {
    let login: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": "admin@example.com", "password": "admin123" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().unwrap().to_owned()
}

impl Server {
    /// Its resident set size now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss::of(self.pid, "VmRSS")
    }

    /// The highest resident set size it has had, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        rss::of(self.pid, "VmHWM")
    }

    /// CPU seconds so far (user and system) of it, of every PostgreSQL process and of RabbitMQ,
    /// in [`CPU_PARTS`] order.
    pub fn cpu_split(&self) -> [f64; 3] {
        [rss::cpu_seconds(self.pid), rss::cpu_seconds_of_all("postgres"), rss::cpu_seconds_of_all("beam.smp")]
    }

    /// Asks it to stop (SIGTERM), and kills it if it has not within 40 s.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        if tokio::time::timeout(Duration::from_secs(40), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
