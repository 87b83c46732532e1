//! An event that contradicts its order (the order is unknown, or not in the state the event
//! announces) is a permanent failure: dead-lettered at once, with one attempt and an error that
//! says why, and nothing recorded.

use std::time::Duration;

use orderflow::{app::Role, registry::Function};
use serde_json::{Value, json};
use shared::{db::orders, domain::NewOrder, events::EventType};
use uuid::Uuid;

use crate::helpers::{TestApp, amqp_channel, app, eventually, publish_raw, queue_depth};

/// An app running only the two notifying functions, so that nothing else moves an order (the
/// `OrderCreated` rows the orders leave are published to a queue nobody consumes).
async fn notifying_functions() -> TestApp {
    app().role(Role::Worker(vec![Function::OnOrderCompleted, Function::OnOrderExpired])).spawn().await
}

/// An order put straight into `status`.
async fn order_in(app: &TestApp, status: &str) -> i64 {
    let new = NewOrder::parse(1, 1, 1, "5.00".parse().unwrap(), None).unwrap();
    let id = orders::insert_order(&app.pool, &new, Uuid::now_v7(), "test", (None, None), None).await.unwrap().id;
    sqlx::query("update orders set status = $2 where id = $1").bind(id).bind(status).execute(&app.pool).await.unwrap();
    id
}

/// Publishes `event` for order `id` and asserts that it was dead-lettered at once: in
/// `<queue>_error`, its journal entry Killed after exactly one attempt with `error` in its
/// last error, and no notification written.
async fn assert_dead_lettered_at_once(app: &TestApp, event: EventType, id: i64, message_id: &str, error: &str) {
    let body = match event {
        EventType::OrderCompleted => json!({ "orderId": id, "userId": 1, "total": 5.00 }),
        _ => json!({ "orderId": id, "userId": 1 }),
    }
    .to_string();
    publish_raw(&app.queue(event), body.as_bytes(), message_id).await;

    // Waits for the job to finish either way, so that a mutant that succeeds fails here with
    // its status rather than on a timeout.
    let row: Value = eventually(&format!("the job of {message_id} to finish"), Duration::from_secs(15), || async {
        app.journal_row(message_id).await.filter(|row| row["status"] == "Done" || row["status"] == "Killed")
    })
    .await;
    assert_eq!(row["status"], "Killed", "{message_id} was not dead-lettered: {row}");
    assert_eq!(row["attempts"], 1, "{message_id} was retried: {row}");
    let last_error = row["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains(error), "{message_id}: expected `{error}` in the error: {row}");
    let channel = amqp_channel().await.unwrap();
    let error_queue = app.topology().error_queue(event);
    eventually(&format!("{message_id} in {error_queue}"), Duration::from_secs(10), || async {
        (queue_depth(&channel, &error_queue).await == 1).then_some(())
    })
    .await;
    assert_eq!(app.count("notifications").await, 0, "{message_id} wrote a notification");
}

#[tokio::test]
async fn order_expired_for_an_unknown_order_is_dead_lettered_at_once_and_notifies_nothing() {
    let app = notifying_functions().await;

    assert_dead_lettered_at_once(
        &app,
        EventType::OrderExpired,
        987_654,
        "expired-unknown",
        "order 987654 does not exist",
    )
    .await;
}

#[tokio::test]
async fn order_expired_for_an_order_that_is_not_expired_is_dead_lettered_at_once_and_notifies_nothing() {
    let app = notifying_functions().await;
    let id = order_in(&app, "Completed").await;

    let error = format!("order {id} is Completed, not Expired");
    assert_dead_lettered_at_once(&app, EventType::OrderExpired, id, "expired-completed", &error).await;
}

#[tokio::test]
async fn order_completed_for_an_order_still_processing_is_dead_lettered_at_once_and_notifies_nothing() {
    let app = notifying_functions().await;
    let id = order_in(&app, "Processing").await;

    // The exact text pins OrderStatus's Display too: "order 7 is , not Completed" would not do.
    let error = format!("order {id} is Processing, not Completed");
    assert_dead_lettered_at_once(&app, EventType::OrderCompleted, id, "completed-processing", &error).await;
}
