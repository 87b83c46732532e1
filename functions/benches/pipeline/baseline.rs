//! The baseline: the same work done by hand with axum, sqlx and lapin only, written as well as we
//! can, so that each orderflow result is a ratio measured side by side. It runs as a server
//! process of its own ([`serve`]: this benchmark started with `--baseline-server <mode>`), with
//! the same HTTP front as orderflow's create (a minimal axum handler doing the same insert), the
//! same SQL statements (the shared queries), the same messages, the same confirms and
//! persistence; no apalis, no journal, no authentication, no log.

use chrono::{DateTime, Utc};
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions},
    types::FieldTable,
};
use shared::{
    db::{notifications, orders, outbox::OutboxMessage},
    events::{EventType, OrderCompleted, OrderCreated, OrderExpired},
    messaging::Topology,
};
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A running baseline pipeline.
pub struct Baseline {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    connection: Connection,
    /// Wakes the relay after outbox rows were written.
    pub wake: Arc<Notify>,
}

/// What the baseline's functions share.
struct Shared {
    pool: PgPool,
    wake: Arc<Notify>,
    gate: Semaphore,
    payment_delay: Duration,
}

impl Baseline {
    /// Declares the queues and starts the relay and the three consumers.
    pub async fn start(
        pool: PgPool,
        amqp_url: &str,
        topology: Topology,
        payment_delay: Duration,
        prefetch: u16,
    ) -> Baseline {
        Self::start_with(pool, amqp_url, topology, payment_delay, Some(prefetch)).await
    }

    /// Declares the queues and starts the relay only (what an API process does).
    pub async fn start_relay_only(pool: PgPool, amqp_url: &str, topology: Topology) -> Baseline {
        Self::start_with(pool, amqp_url, topology, Duration::ZERO, None).await
    }

    async fn start_with(
        pool: PgPool,
        amqp_url: &str,
        topology: Topology,
        payment_delay: Duration,
        prefetch: Option<u16>,
    ) -> Baseline {
        // The same frame size as orderflow's connections (see `shared::messaging::FRAME_MAX`).
        let amqp_url = &shared::messaging::connection_url(amqp_url);
        let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await.unwrap();
        let setup = connection.create_channel().await.unwrap();
        topology.declare(&setup).await.unwrap();
        let stop = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            gate: Semaphore::new(pool.options().get_max_connections() as usize),
            pool,
            wake: wake.clone(),
            payment_delay,
        });
        // Publishing and consuming on separate connections, as orderflow does.
        let publishing = Connection::connect(amqp_url, ConnectionProperties::default()).await.unwrap();
        let mut tasks = vec![tokio::spawn(relay(shared.clone(), publishing, topology.clone(), stop.clone()))];
        for event in EventType::ALL.into_iter().filter(|_| prefetch.is_some()) {
            let prefetch = prefetch.unwrap_or_default();
            let channel = connection.create_channel().await.unwrap();
            channel.basic_qos(prefetch, BasicQosOptions::default()).await.unwrap();
            tasks.push(tokio::spawn(consume(shared.clone(), channel, topology.queue(event), event, stop.clone())));
        }
        Baseline { stop, tasks, connection, wake }
    }

    /// Stops everything.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Publishes unsent outbox rows in batches with confirms, then marks them sent.
async fn relay(shared: Arc<Shared>, connection: Connection, topology: Topology, stop: CancellationToken) {
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    loop {
        let published = relay_batch(&shared.pool, &channel, &topology).await;
        if published == 500 {
            continue;
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            () = stop.cancelled() => break,
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

async fn relay_batch(pool: &PgPool, channel: &Channel, topology: &Topology) -> usize {
    let Ok(mut tx) = pool.begin().await else { return 0 };
    // The textbook relay: row locks held across the publish (orderflow's own relay leases rows
    // instead, so that a blocked broker cannot hold locks; see shared/src/db/outbox.rs).
    let rows: Vec<OutboxMessage> =
        sqlx::query_as::<_, (i64, Uuid, String, Option<i64>, String, String, DateTime<Utc>)>(
            "select id, message_id, event_type, order_id, payload::text, correlation_id, created_at
         from outbox where sent_at is null and parked_at is null order by id limit 500 for update skip locked",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, message_id, event_type, order_id, payload, correlation_id, created_at)| OutboxMessage {
            id,
            message_id,
            event_type,
            order_id,
            payload,
            correlation_id,
            created_at,
            traceparent: None,
            tracestate: None,
        })
        .collect();
    if rows.is_empty() {
        return 0;
    }
    let mut confirms = Vec::with_capacity(rows.len());
    for row in &rows {
        let event: EventType = row.event_type.parse().unwrap();
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(row.message_id.to_string().into())
            .with_correlation_id(row.correlation_id.as_str().into())
            .with_type(row.event_type.as_str().into())
            .with_timestamp(u64::try_from(row.created_at.timestamp()).unwrap_or_default());
        let confirm = channel
            .basic_publish(
                "".into(),
                topology.queue(event).as_str().into(),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                row.payload.as_bytes(),
                properties,
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    for confirm in futures::future::join_all(confirms).await {
        assert!(matches!(confirm.unwrap(), Confirmation::Ack(None)), "publish not confirmed");
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("update outbox set sent_at = now(), attempts = attempts + 1 where id = any($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows.len()
}

/// Consumes one queue, handling each delivery in its own task and acking after it committed.
async fn consume(shared: Arc<Shared>, channel: Channel, queue: String, event: EventType, stop: CancellationToken) {
    let mut consumer = channel
        .basic_consume(queue.as_str().into(), "baseline".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    loop {
        let delivery = tokio::select! {
            next = consumer.next() => match next { Some(Ok(delivery)) => delivery, _ => break },
            () = stop.cancelled() => break,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let message_id = delivery.properties.message_id().as_ref().map(ToString::to_string);
            match event {
                EventType::OrderCreated => {
                    let created: OrderCreated = serde_json::from_slice(&delivery.data).unwrap();
                    pay(&shared, &created, message_id.as_deref()).await;
                }
                EventType::OrderCompleted => {
                    let completed: OrderCompleted = serde_json::from_slice(&delivery.data).unwrap();
                    let _turn = shared.gate.acquire().await.unwrap();
                    if notifications::record_completed(&shared.pool, completed.order_id).await.is_err() {
                        return; // stopped meanwhile: the message is redelivered
                    }
                }
                EventType::OrderExpired => {
                    let expired: OrderExpired = serde_json::from_slice(&delivery.data).unwrap();
                    let _turn = shared.gate.acquire().await.unwrap();
                    if notifications::record_expired(&shared.pool, expired.order_id).await.is_err() {
                        return;
                    }
                }
            }
            // After a stop the channel may be closing; the message is then simply redelivered.
            let _ = delivery.ack(BasicAckOptions::default()).await;
        });
    }
}

/// Guarded Pending → Processing, the payment wait, and Processing → Completed with its event.
async fn pay(shared: &Shared, created: &OrderCreated, message_id: Option<&str>) {
    let started = {
        let _turn = shared.gate.acquire().await.unwrap();
        orders::mark_processing_if_pending(&shared.pool, created.order_id, message_id).await
    };
    if !matches!(started, Ok(orders::StartProcessing::Started)) {
        return;
    }
    tokio::time::sleep(shared.payment_delay).await;
    let _turn = shared.gate.acquire().await.unwrap();
    if let Ok(true) =
        orders::complete_with_event(&shared.pool, created.order_id, Uuid::now_v7(), "baseline", (None, None)).await
    {
        shared.wake.notify_one();
    }
}

/// What the baseline server's process holds for its handlers.
#[derive(Clone)]
struct Front {
    pool: PgPool,
    /// The relay's wake-up, where there is a relay (not in `insert` mode).
    wake: Option<Arc<Notify>>,
}

/// The create request's body, as orderflow's API takes it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateOrder {
    user_id: i64,
    product_id: i64,
    quantity: i64,
    price: serde_json::Number,
}

/// `POST /api/orders`: validate, insert the order with its event, wake the relay, answer 201.
async fn create_order(
    axum::extract::State(front): axum::extract::State<Front>,
    axum::Json(body): axum::Json<CreateOrder>,
) -> Result<(axum::http::StatusCode, axum::Json<shared::domain::Order>), axum::http::StatusCode> {
    let bad = |_| axum::http::StatusCode::BAD_REQUEST;
    let price = body.price.to_string().parse().map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
    let order =
        shared::domain::NewOrder::parse(body.user_id, body.product_id, body.quantity, price, None).map_err(bad)?;
    let created = orders::insert_order(&front.pool, &order, Uuid::now_v7(), "baseline", (None, None), None)
        .await
        .map_err(|_| axum::http::StatusCode::SERVICE_UNAVAILABLE)?;
    if let Some(wake) = &front.wake {
        wake.notify_one();
    }
    Ok((axum::http::StatusCode::CREATED, axum::Json(created)))
}

/// `POST /expire`: one expiry sweep as orderflow's cron function runs it (batches of 5,000
/// orders idle for over 10 minutes, each batch with its events), answered with when it started
/// (database time, epoch seconds) and how long it took.
async fn expire(axum::extract::State(front): axum::extract::State<Front>) -> axum::Json<serde_json::Value> {
    let started: f64 =
        sqlx::query_scalar("select extract(epoch from now())::float8").fetch_one(&front.pool).await.unwrap();
    let clock = std::time::Instant::now();
    let now = Utc::now();
    loop {
        let expired = orders::expire_batch(
            &front.pool,
            now - chrono::Duration::minutes(10),
            now,
            5_000,
            "baseline",
            (None, None),
        )
        .await
        .unwrap();
        if let Some(wake) = &front.wake {
            wake.notify_one();
        }
        if expired < 5_000 {
            break;
        }
    }
    axum::Json(serde_json::json!({ "started": started, "sweep_s": clock.elapsed().as_secs_f64() }))
}

/// The baseline server, until SIGTERM. `mode` is how much of the pipeline it runs:
/// `insert` (the HTTP front and the insert only), `relay` (and the relay publishing, as
/// `orderflow api`) or `pipeline` (and the three consumers, as `orderflow all`). It reads
/// `DATABASE_URL`, `AMQP_URL`, `QUEUE_PREFIX`, `HTTP_ADDR` and `PAYMENT_DELAY_MS`.
pub async fn serve(mode: &str) {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    // The pool a careful hand-written service would use: no ping before each use.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(crate::env::POOL)
        .test_before_acquire(false)
        .connect(&var("DATABASE_URL"))
        .await
        .unwrap();
    let topology = Topology::new(var("QUEUE_PREFIX"), shared::config::QueueType::Classic);
    let delay = Duration::from_millis(var("PAYMENT_DELAY_MS").parse().unwrap());
    let amqp = var("AMQP_URL");
    let pipeline = match mode {
        "insert" => None,
        "relay" => Some(Baseline::start_relay_only(pool.clone(), &amqp, topology).await),
        "pipeline" => Some(Baseline::start(pool.clone(), &amqp, topology, delay, 10_000).await),
        other => panic!("unknown baseline mode {other}"),
    };
    let front = Front { pool, wake: pipeline.as_ref().map(|p| p.wake.clone()) };
    let app = axum::Router::new()
        .route("/api/orders", axum::routing::post(create_order))
        .route("/expire", axum::routing::post(expire))
        .route("/health/ready", axum::routing::get(|| async { "ready" }))
        .with_state(front);
    let listener = tokio::net::TcpListener::bind(var("HTTP_ADDR")).await.unwrap();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { terminate.recv().await.unwrap_or_default() })
        .await
        .unwrap();
    if let Some(pipeline) = pipeline {
        pipeline.stop().await;
    }
}
