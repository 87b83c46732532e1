//! Retries and dead-lettering: what cannot be processed ends in `<queue>_error`, intact, after
//! the retries it deserves (none for what retrying cannot fix), and never blocks its queue.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{config::QueueType, events::EventType, payments::PaymentError};

use crate::{
    gateways::ScriptedGateway,
    helpers::{amqp_channel, app, eventually, order_body, order_status, publish_raw, queue_depth, take_message},
};

#[tokio::test]
async fn a_payment_that_always_fails_is_tried_four_times_with_growing_delays_then_dead_lettered() {
    let gateway = ScriptedGateway::new(|_| Err(PaymentError("card processor down".into())));
    let app = app().with_functions().payments(gateway.clone()).spawn().await;
    let token = app.admin_token().await;
    let order: Value = app.create_order(&token, &order_body()).await.json().await.unwrap();
    let channel = amqp_channel().await.unwrap();
    let error_queue = app.topology().error_queue(EventType::OrderCreated);

    eventually("the message in the error queue", Duration::from_secs(15), || async {
        (queue_depth(&channel, &error_queue).await == 1).then_some(())
    })
    .await;

    // 1 + MAX_RETRIES attempts, 100 ms, 200 ms, 400 ms apart (RETRY_BASE_MS = 100, doubling).
    let times = gateway.call_times();
    assert_eq!(times.len(), 4, "attempts");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Lower bounds only (less 10 % for jitter): a busy machine can lengthen a gap, never
    // shorten it, so this holds however loaded the run is and fails for a flat backoff.
    for (gap, nominal_ms) in gaps.iter().zip([100, 200, 400]) {
        assert!(*gap >= Duration::from_millis(nominal_ms * 9 / 10), "delays do not grow: {gaps:?}");
    }
    let dead = take_message(&channel, &error_queue).await.unwrap();
    let payload: String = sqlx::query_scalar("select payload::text from outbox where event_type = 'OrderCreated'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(dead.delivery.data, payload.as_bytes(), "payload changed");
    assert_eq!(order_status(&app.pool, order["id"].as_i64().unwrap()).await, "Processing");
}

#[tokio::test]
async fn garbage_is_dead_lettered_without_retries_and_does_not_block_the_queue() {
    let gateway = ScriptedGateway::approving();
    let app = app().with_functions().payments(gateway.clone()).spawn().await;
    let queue = app.queue(EventType::OrderCreated);
    let error_queue = app.topology().error_queue(EventType::OrderCreated);
    let channel = amqp_channel().await.unwrap();

    publish_raw(&queue, b"this is not json", "garbage-1").await;
    publish_raw(&queue, br#"{"orderId": "seven"}"#, "garbage-2").await;
    let token = app.admin_token().await;
    let response = app.create_order(&token, &order_body()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    eventually("the valid order behind the garbage to complete", Duration::from_secs(15), || async {
        (order_status(&app.pool, id).await == "Completed").then_some(())
    })
    .await;
    eventually("both garbage messages in the error queue", Duration::from_secs(10), || async {
        (queue_depth(&channel, &error_queue).await == 2).then_some(())
    })
    .await;
    assert_eq!(gateway.calls(), 1, "only the valid order was charged");
    let first = take_message(&channel, &error_queue).await.unwrap();
    assert_eq!(first.delivery.data, b"this is not json");
}

#[tokio::test]
async fn an_event_for_an_unknown_order_is_dead_lettered_at_once() {
    an_event_for_an_unknown_order_is_dead_lettered_at_once_on(QueueType::Classic).await;
}

#[tokio::test]
async fn quorum_queues_dead_letter_an_event_for_an_unknown_order_too() {
    an_event_for_an_unknown_order_is_dead_lettered_at_once_on(QueueType::Quorum).await;
}

async fn an_event_for_an_unknown_order_is_dead_lettered_at_once_on(queue_type: QueueType) {
    let gateway = ScriptedGateway::approving();
    let app = app().with_functions().payments(gateway.clone()).config(|c| c.queue_type = queue_type).spawn().await;
    let channel = amqp_channel().await.unwrap();

    let unknown = json!({ "orderId": 987_654, "userId": 1, "productId": 1, "total": 1.00 }).to_string();
    publish_raw(&app.queue(EventType::OrderCreated), unknown.as_bytes(), "unknown-order").await;
    let completed_unknown = json!({ "orderId": 987_654, "userId": 1, "total": 1.00 }).to_string();
    publish_raw(&app.queue(EventType::OrderCompleted), completed_unknown.as_bytes(), "unknown-completed").await;

    for event in [EventType::OrderCreated, EventType::OrderCompleted] {
        let error_queue = app.topology().error_queue(event);
        eventually(&format!("{error_queue} to hold the message"), Duration::from_secs(10), || async {
            (queue_depth(&channel, &error_queue).await == 1).then_some(())
        })
        .await;
    }
    assert_eq!(gateway.calls(), 0);
    assert_eq!(app.count("notifications").await, 0);
    // At once: one attempt each, no retries.
    for message_id in ["unknown-order", "unknown-completed"] {
        let row = app.job_in_status(message_id, "Killed").await;
        assert_eq!(row["attempts"], 1, "{message_id} was retried: {row}");
    }
}
