use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;
use shared::{
    db::{orders, outbox},
    domain::NewOrder,
    events::EventType,
    messaging::{OutboxRelay, OutboxSignal, Publisher, RelaySettings},
    metrics::Metrics,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{TestApp, amqp_channel, amqp_url, eventually, order_body, queue_depth, spawn_app_with};

/// An AMQP URL where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

async fn spawn_app_without_broker() -> TestApp {
    spawn_app_with(|config| config.amqp_url = closed_port_url()).await
}

/// Starts a relay on `pool` that publishes to the real broker under `app`'s queue names.
fn start_relay(app: &TestApp, stop: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let relay = OutboxRelay::new(
        app.pool.clone(),
        Arc::new(Publisher::new(amqp_url(), app.topology())),
        OutboxSignal::default(),
        Arc::new(Metrics::default()),
        RelaySettings { batch_size: 50, poll_interval: Duration::from_millis(20), max_rejections: 10 },
    );
    tokio::spawn(relay.run(stop.clone()))
}

async fn unsent(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where sent_at is null").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn with_the_broker_unreachable_orders_are_taken_and_published_once_it_is_reachable() {
    let app = spawn_app_without_broker().await;
    let token = app.admin_token().await;

    let response = app.create_order(&token, &order_body()).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    // The relay tried, failed, recorded why, and kept the row.
    let error: String = eventually("a recorded publish failure", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, Option<String>>("select last_error from outbox").fetch_one(&app.pool).await.unwrap()
    })
    .await;
    assert!(error.contains("unavailable"), "{error}");
    assert_eq!(unsent(&app.pool).await, 1);
    // The API stays ready (the outbox holds the order) and says what waits.
    let ready = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let checks = ready.json::<Value>().await.unwrap()["checks"].clone();
    assert_eq!(checks["broker"], "down", "{checks}");
    assert_eq!(checks["outboxUnsent"], 1, "{checks}");
    assert_eq!(checks["outboxParked"], 0, "{checks}");
    assert!(checks["outboxOldestUnsentSecs"].as_i64().is_some(), "{checks}");

    // A relay that can reach the broker drains the backlog.
    let stop = CancellationToken::new();
    let relay = start_relay(&app, &stop);
    eventually("the backlog to drain", Duration::from_secs(10), || async {
        (unsent(&app.pool).await == 0).then_some(())
    })
    .await;
    stop.cancel();
    relay.await.unwrap();
    let channel = amqp_channel().await.unwrap();
    assert_eq!(queue_depth(&channel, &app.queue(EventType::OrderCreated)).await, 1);
}

#[tokio::test]
async fn several_relays_at_once_publish_each_row_exactly_once() {
    let app = spawn_app_without_broker().await;
    let order = NewOrder::parse(1, 1, 1, "2.50".parse().unwrap(), None).unwrap();
    let rows = 300;
    for _ in 0..rows {
        orders::insert_order(&app.pool, &order, Uuid::now_v7(), "test", (None, None), None).await.unwrap();
    }

    let stop = CancellationToken::new();
    let relays: Vec<_> = (0..3).map(|_| start_relay(&app, &stop)).collect();
    eventually("every row to be sent", Duration::from_secs(20), || async {
        (unsent(&app.pool).await == 0).then_some(())
    })
    .await;
    stop.cancel();
    for relay in relays {
        relay.await.unwrap();
    }

    let channel = amqp_channel().await.unwrap();
    assert_eq!(queue_depth(&channel, &app.queue(EventType::OrderCreated)).await, rows);
}

#[tokio::test]
async fn start_up_declares_every_queue_and_its_dead_letter_route() {
    let app = crate::helpers::app().without_predeclared_topology().spawn().await;

    // The relay declares the topology as soon as it reaches the broker (start-up does not wait
    // for RabbitMQ: orders are taken while it is down). A passive declare fails while a queue
    // is missing, and closes its channel: a fresh one each time.
    eventually("every queue to be declared", Duration::from_secs(10), || async {
        for queue in app.topology().all_queues() {
            let channel = amqp_channel().await.unwrap();
            let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
            channel.queue_declare(queue.as_str().into(), options, Default::default()).await.ok()?;
        }
        Some(())
    })
    .await;
    // Each event queue dead-letters into its error queue: a message rejected without requeue
    // lands there.
    let channel = amqp_channel().await.unwrap();
    for event in EventType::ALL {
        let queue = app.queue(event);
        crate::helpers::publish_raw(&queue, b"{}", &format!("dead-letter-probe-{}", event.as_str())).await;
        let message = eventually("the probe in its queue", Duration::from_secs(5), || async {
            channel.basic_get(queue.as_str().into(), lapin::options::BasicGetOptions { no_ack: false }).await.unwrap()
        })
        .await;
        message.delivery.reject(lapin::options::BasicRejectOptions { requeue: false }).await.unwrap();
        let error_queue = app.topology().error_queue(event);
        eventually(&format!("the probe in {error_queue}"), Duration::from_secs(5), || async {
            (queue_depth(&channel, &error_queue).await == 1).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_relay_whose_lease_ran_out_cannot_touch_the_rows_another_relay_took_over() {
    // The app's own relay polls only every ten minutes, and nothing here wakes it: once it has
    // made its first pass (it connects to the broker after finding nothing), it stays out.
    let app = spawn_app_with(|c| c.outbox_poll_ms = 600_000).await;
    eventually("the app's relay to make its first pass", Duration::from_secs(10), || async {
        let ready: Value = app.client.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
        (ready["checks"]["broker"] == "up").then_some(())
    })
    .await;
    let message_id: Uuid = sqlx::query_scalar(
        "insert into outbox (message_id, event_type, order_id, payload, correlation_id)
         values (gen_random_uuid(), 'OrderExpired', 1, '{\"orderId\": 1, \"userId\": 1}', 'lease-test')
         returning message_id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // A relay whose lease ends at once (it hung), and one that takes the row over.
    let (stale, first) = outbox::claim(&app.pool, 10, Duration::ZERO).await.unwrap();
    let (live, second) = outbox::claim(&app.pool, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!((first.len(), second.len()), (1, 1), "an ended lease is taken over");
    let id = second[0].id;

    // The stale relay reports late, under its ended lease.
    outbox::record_failure(&app.pool, &[id], "late failure", stale).await.unwrap();
    let parked =
        outbox::record_rejection(&app.pool, &[id], "late refusal", Duration::from_secs(1), 1, stale).await.unwrap();
    outbox::release(&app.pool, &[id], stale).await.unwrap();

    assert!(parked.is_empty(), "a stale lease parked a row");
    let row: (chrono::DateTime<chrono::Utc>, i32, i32, Option<String>, bool) = sqlx::query_as(
        "select available_at, attempts, rejections, last_error, parked_at is not null from outbox where id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(row, (live, 0, 0, None, false), "the stale relay changed a row it no longer held");
    let (_, third) = outbox::claim(&app.pool, 10, Duration::from_secs(60)).await.unwrap();
    assert!(third.is_empty(), "a leased row was claimed again");
    // The live relay hands the row back (it is shutting down): the next claim takes it at once.
    outbox::release(&app.pool, &[id], live).await.unwrap();
    let (live, fourth) = outbox::claim(&app.pool, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(fourth.len(), 1, "a released row waits for its lease to end");
    // The live relay's refusal counts (one refusal parks it here).
    let parked = outbox::record_rejection(&app.pool, &[id], "message unroutable", Duration::from_secs(1), 1, live)
        .await
        .unwrap();
    assert_eq!(parked, [message_id]);
}
