//! The board's live log stream carries job events: the real binary (whose tracing feeds the
//! stream), an order through it, and the events read from `/api/v1/events`.

use std::time::Duration;

use futures::StreamExt;

use crate::process::Binary;

#[tokio::test]
async fn the_boards_live_log_streams_the_events_of_running_jobs() {
    let binary = Binary::start(&[]).await;
    let events = binary
        .client
        .get(format!("http://{}/api/v1/events", binary.board))
        .basic_auth("admin@example.com", Some("admin123"))
        .send()
        .await
        .unwrap();
    assert!(events.status().is_success(), "{}", events.status());
    let mut stream = events.bytes_stream();

    let token = binary.admin_token().await;
    let order: serde_json::Value = binary
        .client
        .post(binary.url("/api/orders"))
        .bearer_auth(token)
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

    assert_eq!(found, Ok(true), "no job event for `{completed}` in the stream:\n{seen}");
}
