//! The board's live log stream carries job events: the real binary (whose tracing feeds the
//! stream), an order through it, and the events read from `/api/v1/events`.

use std::{process::Stdio, time::Duration};

use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::helpers::{delete_topology, postgres_server, test_config};

/// Two distinct free ports (both held while the second is chosen, so they differ).
fn two_free_ports() -> (u16, u16) {
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let second = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (first.local_addr().unwrap().port(), second.local_addr().unwrap().port())
}

#[tokio::test]
async fn the_boards_live_log_streams_the_events_of_running_jobs() {
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    crate::helpers::eventually("orderflow to be ready", Duration::from_secs(30), || async {
        client.get(format!("http://{http}/health/ready")).send().await.ok().filter(|r| r.status().is_success())
    })
    .await;
    let events = client
        .get(format!("http://{board}/api/v1/events"))
        .basic_auth("admin@example.com", Some("admin123"))
        .send()
        .await
        .unwrap();
    assert!(events.status().is_success(), "{}", events.status());
    let mut stream = events.bytes_stream();

    let login: Value = client
        .post(format!("http://{http}/api/auth/login"))
        .json(&json!({ "email": "admin@example.com", "password": "admin123" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order: Value = client
        .post(format!("http://{http}/api/orders"))
        .bearer_auth(login["token"].as_str().unwrap())
        .json(&crate::helpers::order_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let completed = format!("order {} completed", order["id"]);

    // Console logging is at warn: whatever job events arrive came through the board's own layer.
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.lines().any(|line| line.contains(&completed) && line.contains("\"task_id\"")) {
                return true;
            }
        }
        false
    })
    .await;

    let _ = process.kill().await;
    if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server())).await {
        let database = config.database_url.rsplit('/').next().unwrap().to_owned();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(r#"drop database if exists "{database}" with (force)"#)))
            .execute(&mut admin)
            .await;
    }
    delete_topology(&shared::messaging::Topology::new(config.queue_prefix.clone(), config.queue_type)).await;
    assert_eq!(found, Ok(true), "no job event for `{completed}` in the stream:\n{seen}");
}
