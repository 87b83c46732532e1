//! orderflow started in-process on a run's environment, logged in as the seeded admin, and
//! stopped again.

use std::time::{Duration, Instant};

use orderflow::app::{Application, Externals, Role};
use serde_json::{Value, json};
use shared::Config;
use tokio_util::sync::CancellationToken;

use crate::{
    env::{AMQP, Env, POOL},
    load::CONCURRENCY,
};

/// A running in-process orderflow and a logged-in client for its HTTP API.
pub struct Orderflow {
    shutdown: CancellationToken,
    run: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The base URL of its HTTP API.
    pub http: String,
    /// A client with room for `CONCURRENCY` idle connections.
    pub client: reqwest::Client,
    /// The admin's bearer token.
    pub token: String,
}

/// Starts orderflow as `role` on `env`, with `tweak` applied to its configuration, and waits
/// until it is ready (only live with `BENCH_CREATE_NO_BROKER`, where the broker is unreachable).
pub async fn start_orderflow(env: &Env, role: Role, tweak: impl FnOnce(&mut Config)) -> Orderflow {
    let mut config = Config::from_env();
    config.database_url = env.url();
    config.amqp_url = AMQP.into();
    config.queue_prefix = env.queue_prefix();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.board_addr = "127.0.0.1:0".parse().unwrap();
    config.db_max_connections = POOL;
    config.payment_delay_ms = 0;
    config.payment_success_rate = 1.0;
    tweak(&mut config);
    let externals = Externals::from_config(&config);
    let app = Application::build_with(config, role, externals).await.unwrap();
    let http = format!("http://{}", app.http_addr());
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(app.run(shutdown.clone()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = if std::env::var_os("BENCH_CREATE_NO_BROKER").is_some() { "live" } else { "ready" };
    while !client.get(format!("{http}/health/{probe}")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "orderflow did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = admin_token(&client, &http).await;
    Orderflow { shutdown, run, http, client, token }
}

/// The seeded admin's bearer token from the orderflow at `base` (on loopback, where the demo
/// password is accepted).
pub async fn admin_token(client: &reqwest::Client, base: &str) -> String {
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

impl Orderflow {
    /// Asks it to shut down and waits (at most 40 s) until it has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(40), self.run).await;
    }
}
