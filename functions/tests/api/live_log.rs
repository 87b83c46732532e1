//! The board's live log stream carries job events: the real binary (whose tracing feeds the
//! stream), an order through it, and the events read from `/api/v1/events`.

use std::time::Duration;

use futures::StreamExt;

use crate::process::Binary;

#[tokio::test]
async fn the_boards_live_log_streams_the_events_of_running_jobs() {
    let binary = Binary::start(&[]).await;
    let events = binary.board_get("/events").await;
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

#[tokio::test]
async fn the_live_log_counts_a_watcher_only_while_an_admin_keeps_the_stream_open() {
    let live_log = orderflow::board::LiveLog::new();
    let app = crate::helpers::app().live_log(live_log.clone()).spawn().await;
    let board = app.board_address.clone().unwrap();
    assert_eq!(live_log.watchers(), 0);

    let refused =
        app.client.get(format!("{board}/api/v1/events")).basic_auth("admin@example.com", Some("wrong")).send().await;
    assert_eq!(refused.unwrap().status(), 401);
    assert_eq!(live_log.watchers(), 0, "a refused request watches nothing");
    let other = app.board_get("/queues").await;
    assert!(other.status().is_success());
    assert_eq!(live_log.watchers(), 0, "only the stream counts");

    let (first, second) = (app.board_get("/events").await, app.board_get("/events").await);
    assert!(first.status().is_success() && second.status().is_success());
    assert_eq!(live_log.watchers(), 2);
    drop(first);
    crate::helpers::eventually("the first watcher to go", Duration::from_secs(10), || async {
        (live_log.watchers() == 1).then_some(())
    })
    .await;
    drop(second);
    crate::helpers::eventually("the second watcher to go", Duration::from_secs(10), || async {
        (live_log.watchers() == 0).then_some(())
    })
    .await;
}
