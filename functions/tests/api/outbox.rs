use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;
use shared::{
    db::orders,
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
        RelaySettings { batch_size: 50, poll_interval: Duration::from_millis(20), max_attempts: 4, max_rejections: 10 },
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
        orders::insert_order(&app.pool, &order, Uuid::now_v7(), "test", None).await.unwrap();
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
