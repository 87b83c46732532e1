//! The queue functions, through the running service: events flow from the outbox through
//! RabbitMQ to the functions, and duplicates change nothing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{
    events::EventType,
    payments::{PaymentError, PaymentOutcome},
};

use crate::{
    gateways::ScriptedGateway,
    helpers::{
        TestApp, amqp_channel, app, eventually, notifications_of, order_body, order_status, outbox_rows, publish_raw,
        queue_depth,
    },
};

async fn create_order(app: &TestApp) -> i64 {
    let token = app.admin_token().await;
    let response = app.create_order(&token, &order_body()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn wait_for_status(app: &TestApp, id: i64, status: &str) {
    eventually(&format!("order {id} to be {status}"), Duration::from_secs(15), || async {
        (order_status(&app.pool, id).await == status).then_some(())
    })
    .await;
}

async fn all_outbox_rows_sent(app: &TestApp) {
    eventually("every outbox row to be published", Duration::from_secs(10), || async {
        let unsent: i64 =
            sqlx::query_scalar("select count(*) from outbox where sent_at is null").fetch_one(&app.pool).await.unwrap();
        (unsent == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_paid_order_completes_and_is_notified_once_with_its_total() {
    let app = app().with_functions().spawn().await;

    let id = create_order(&app).await;

    wait_for_status(&app, id, "Completed").await;
    eventually("the completion notification", Duration::from_secs(10), || async {
        (notifications_of(&app.pool, id, "OrderCompleted").await == 1).then_some(())
    })
    .await;
    all_outbox_rows_sent(&app).await;
    assert_eq!(outbox_rows(&app.pool, "OrderCompleted").await, 1);
    let token = app.admin_token().await;
    let body = app.get(&token, &format!("/api/notifications?orderId={id}")).await.text().await.unwrap();
    // Exact money in the metadata: 3 × 9.99 with two decimals.
    assert!(body.contains(r#""total": 29.97"#) || body.contains(r#""total":29.97"#), "{body}");
    let notifications: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(notifications[0]["metadata"]["userId"], 1);
    assert_eq!(notifications[0]["type"], "OrderCompleted");
}

#[tokio::test]
async fn a_declined_payment_leaves_the_order_processing_and_publishes_nothing() {
    let gateway = ScriptedGateway::new(|_| Ok(PaymentOutcome::Declined));
    let app = app().with_functions().payments(gateway.clone()).spawn().await;

    let id = create_order(&app).await;

    wait_for_status(&app, id, "Processing").await;
    let message_id: String =
        sqlx::query_scalar("select message_id::text from outbox where event_type = 'OrderCreated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    app.job_in_status(&message_id, "Done").await;
    assert_eq!(gateway.calls(), 1);
    assert_eq!(order_status(&app.pool, id).await, "Processing");
    assert_eq!(outbox_rows(&app.pool, "OrderCompleted").await, 0);
    assert_eq!(app.count("notifications").await, 0);
}

#[tokio::test]
async fn the_same_order_created_delivered_three_times_charges_and_completes_once() {
    let gateway = ScriptedGateway::approving();
    let app = app().with_functions().payments(gateway.clone()).config(|c| c.payment_delay_ms = 300).spawn().await;
    let id = create_order(&app).await;
    let payload = json!({ "orderId": id, "userId": 1, "productId": 2, "total": 29.97 }).to_string();
    let queue = app.queue(EventType::OrderCreated);

    // Two more copies of the event, concurrently with the relay's own publish.
    tokio::join!(publish_raw(&queue, payload.as_bytes(), "dup-1"), publish_raw(&queue, payload.as_bytes(), "dup-2"));

    wait_for_status(&app, id, "Completed").await;
    eventually("the completion notification", Duration::from_secs(10), || async {
        (notifications_of(&app.pool, id, "OrderCompleted").await == 1).then_some(())
    })
    .await;
    // Both copies handled (each found the order past Pending), not merely still queued.
    app.job_in_status("dup-1", "Done").await;
    app.job_in_status("dup-2", "Done").await;
    assert_eq!(gateway.calls(), 1, "charged more than once");
    assert_eq!(outbox_rows(&app.pool, "OrderCompleted").await, 1);
    assert_eq!(notifications_of(&app.pool, id, "OrderCompleted").await, 1);
}

#[tokio::test]
async fn order_completed_and_order_expired_delivered_twice_notify_once_each() {
    let app = app().with_functions().spawn().await;
    let token = app.admin_token().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let order: Value = app.create_order(&token, &order_body()).await.json().await.unwrap();
        ids.push(order["id"].as_i64().unwrap());
    }
    let (completed, expired) = (ids[0], ids[1]);
    wait_for_status(&app, completed, "Completed").await;
    wait_for_status(&app, expired, "Completed").await;
    // Pretend the second one expired instead, as the sweep would have left it.
    sqlx::query("update orders set status = 'Expired' where id = $1").bind(expired).execute(&app.pool).await.unwrap();

    for copy in 0..2 {
        let body = json!({ "orderId": completed, "userId": 1, "total": 29.97 }).to_string();
        publish_raw(&app.queue(EventType::OrderCompleted), body.as_bytes(), &format!("c-{copy}")).await;
        let body = json!({ "orderId": expired, "userId": 1 }).to_string();
        publish_raw(&app.queue(EventType::OrderExpired), body.as_bytes(), &format!("e-{copy}")).await;
    }

    for message_id in ["c-0", "c-1", "e-0", "e-1"] {
        app.job_in_status(message_id, "Done").await;
    }
    assert_eq!(notifications_of(&app.pool, completed, "OrderCompleted").await, 1);
    assert_eq!(notifications_of(&app.pool, expired, "OrderExpired").await, 1);
}

#[tokio::test]
async fn an_unpaid_order_expires_after_its_ttl_and_is_notified() {
    let app = app()
        .with_functions()
        .payments(ScriptedGateway::new(|_| Ok(PaymentOutcome::Declined)))
        .config(|c| {
            c.order_ttl_secs = 1;
            c.expiry_schedule = "* * * * * *".into();
        })
        .spawn()
        .await;

    let id = create_order(&app).await;

    wait_for_status(&app, id, "Expired").await;
    eventually("the expiry notification", Duration::from_secs(10), || async {
        (notifications_of(&app.pool, id, "OrderExpired").await == 1).then_some(())
    })
    .await;
    let token = app.admin_token().await;
    let notifications: Value = app.get(&token, &format!("/api/notifications?orderId={id}")).await.json().await.unwrap();
    assert_eq!(notifications[0]["metadata"]["userId"], 1);
    assert!(notifications[0]["metadata"]["expiredAt"].is_string(), "{notifications}");
    let done_runs: i64 = sqlx::query_scalar("select count(*) from cron_runs where outcome = 'Done' and affected = 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(done_runs, 1);
}

#[tokio::test]
async fn a_transient_payment_failure_succeeds_on_a_retry() {
    let gateway = ScriptedGateway::new(|call| {
        if call.n == 0 { Err(PaymentError("gateway timed out".into())) } else { Ok(PaymentOutcome::Approved) }
    });
    let app = app().with_functions().payments(gateway.clone()).spawn().await;

    let id = create_order(&app).await;

    wait_for_status(&app, id, "Completed").await;
    assert_eq!(gateway.calls(), 2);
    assert_eq!(outbox_rows(&app.pool, "OrderCompleted").await, 1);
    // The order's timeline still tells of the failure the retry got past.
    let token = app.admin_token().await;
    let done = eventually("the payment job in the timeline", Duration::from_secs(10), || async {
        let timeline: Value = app.get(&token, &format!("/api/orders/{id}/events")).await.json().await.unwrap();
        timeline.as_array().unwrap().iter().find(|e| e["event"] == "on_order_created Done").cloned()
    })
    .await;
    let detail = done["detail"].as_str().unwrap();
    assert!(detail.contains("after 1 failed attempt(s)") && detail.contains("gateway timed out"), "{done}");
}

/// After a shutdown: the OrderCreated message went back to its queue (the broker processes the
/// requeue asynchronously, hence the wait), and nothing was dead-lettered.
async fn the_order_created_message_is_back_in_its_queue(app: &TestApp) {
    let channel = amqp_channel().await.unwrap();
    let main_queue = app.queue(EventType::OrderCreated);
    eventually("the message to be back in its queue", Duration::from_secs(10), || async {
        (queue_depth(&channel, &main_queue).await == 1).then_some(())
    })
    .await;
    assert_eq!(
        queue_depth(&channel, &app.topology().error_queue(EventType::OrderCreated)).await,
        0,
        "a job interrupted by shutdown is not a dead letter"
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_out_a_retry_backoff_and_keeps_the_message() {
    let gateway = ScriptedGateway::new(|_| Err(PaymentError("gateway timed out".into())));
    let mut app = app()
        .with_functions()
        .payments(gateway.clone())
        .config(|config| {
            // The first retry would come a minute later; shutdown must not wait for it.
            config.retry_base_ms = 60_000;
            config.shutdown_timeout_secs = 10;
        })
        .spawn()
        .await;
    let id = create_order(&app).await;
    eventually("the first charge to fail", Duration::from_secs(20), || async { (gateway.calls() == 1).then_some(()) })
        .await;

    assert_eq!(order_status(&app.pool, id).await, "Processing");

    let stopping = std::time::Instant::now();
    app.stop().await;
    // Not a speed check: a shutdown that waited for the backoff would take the whole
    // SHUTDOWN_TIMEOUT_SECS (10 s) and then abandon the job.
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}: it waited for the retry backoff");

    assert_eq!(gateway.calls(), 1);
    the_order_created_message_is_back_in_its_queue(&app).await;
}

#[tokio::test]
async fn shutdown_during_a_long_payment_wait_requeues_the_message() {
    let gateway = ScriptedGateway::new(|_| Ok(PaymentOutcome::Approved));
    let mut app = app()
        .with_functions()
        .payments(gateway.clone())
        .config(|config| {
            // The payment would end long after the drain budget: shutdown cuts it short.
            config.payment_delay_ms = 60_000;
            config.shutdown_timeout_secs = 2;
        })
        .spawn()
        .await;
    let id = create_order(&app).await;
    wait_for_status(&app, id, "Processing").await;

    app.stop().await;

    assert_eq!(gateway.calls(), 0, "the cut-short payment charged nothing");
    the_order_created_message_is_back_in_its_queue(&app).await;
}

#[tokio::test]
async fn shutdown_during_a_payment_wait_that_ends_within_the_drain_budget_completes_the_order_once() {
    let gateway = ScriptedGateway::approving();
    let mut app = app()
        .with_functions()
        .payments(gateway.clone())
        .config(|config| {
            // The payment ends 1.5 s in, well within the 4 s drain budget of a 5 s shutdown.
            config.payment_delay_ms = 1_500;
            config.shutdown_timeout_secs = 5;
        })
        .spawn()
        .await;
    let id = create_order(&app).await;
    wait_for_status(&app, id, "Processing").await;

    app.stop().await;

    // The app's own pool closed with it.
    let pool = sqlx::PgPool::connect(&app.config.database_url).await.unwrap();
    assert_eq!(order_status(&pool, id).await, "Completed", "the payment was cut short");
    assert_eq!(gateway.calls(), 1, "charged other than once");
    assert_eq!(outbox_rows(&pool, "OrderCompleted").await, 1);
}
