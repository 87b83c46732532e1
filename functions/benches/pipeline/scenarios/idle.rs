//! Scenario 5, idle: the real `orderflow` binary as its own process: its start-up time and its
//! memory once started.

use std::time::{Duration, Instant};

use crate::{
    env::{AMQP, Env},
    report::{Row, Rule},
    rss::rss_mib_of,
};

/// 5. Idle: the real binary as its own process, on a migrated database.
pub async fn idle(rows: &mut Vec<Row>) {
    let env = Env::new("idle").await;
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let board = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let prefix = env.queue_prefix();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .env("DATABASE_URL", env.url())
        .env("AMQP_URL", AMQP)
        .env("QUEUE_PREFIX", &prefix)
        .env("HTTP_ADDR", http.to_string())
        .env("BOARD_ADDR", board.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    while !client.get(format!("http://{http}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "orderflow did not become ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = rss_mib_of(child.id().unwrap());
    let _ = child.kill().await;
    env.drop().await;
    rows.push(Row {
        scenario: "5 idle",
        metric: "RSS after start-up (orderflow all, own process), MiB".into(),
        orderflow: rss,
        baseline: None,
        more_is_better: false,
        rule: Rule::Below(60.0, "MiB"),
    });
    rows.push(Row {
        scenario: "5 idle",
        metric: "s from process start to /health/ready = 200".into(),
        orderflow: ready,
        baseline: None,
        more_is_better: false,
        rule: Rule::Below(2.0, "s"),
    });
}
