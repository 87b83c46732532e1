//! Memory: one worker process holds at most `WORKER_MAX_IN_FLIGHT` jobs across all its queues,
//! and with the defaults stays under 256 MiB of RSS whatever the backlog behind them.
//!
//! The backlog is published straight to the queue (orders inserted in bulk, their
//! `OrderCreated` events published with confirms), with payments that take ten minutes, so every
//! job that becomes a payment parks and holds its memory for the whole case.

use std::time::Duration;

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};
use shared::events::EventType;

use crate::cluster::Cluster;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The budget the case holds the process to: the README's 256 MiB.
const RSS_BUDGET_KIB: u64 = 256 * 1024;
/// `WORKER_MAX_IN_FLIGHT`'s default.
const DEFAULT_MAX_IN_FLIGHT: i64 = 10_000;

/// Inserts `count` Pending orders and publishes their `OrderCreated` events straight to the
/// cluster's queue, with confirms. Returns nothing: the database and the queue say the rest.
async fn backlog(cluster: &Cluster, count: i64) {
    sqlx::query(
        "insert into orders (user_id, product_id, quantity, price, total)
         select 1, 1, 1, 1.00, 1.00 from generate_series(1, $1)",
    )
    .bind(count)
    .execute(&cluster.pool)
    .await
    .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("select id from orders order by id").fetch_all(&cluster.pool).await.unwrap();
    let queue = cluster.topology.queue(EventType::OrderCreated);
    let connection =
        tokio::time::timeout(Duration::from_secs(30), Connection::connect(AMQP, ConnectionProperties::default()))
            .await
            .expect("connecting to RabbitMQ timed out")
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for chunk in ids.chunks(1_000) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for id in chunk {
            let body = format!(r#"{{"orderId":{id},"userId":1,"productId":1,"total":1.00}}"#);
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(format!("memory-{id}").into())
                .with_correlation_id("abuse-suite".into());
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties,
                )
                .await
                .unwrap();
            confirms.push(confirm);
        }
        for confirm in futures::future::join_all(confirms).await {
            assert!(confirm.unwrap().is_ack(), "the broker refused a backlog message");
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

/// The peak resident set (`VmHWM`) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is gone");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("no VmHWM in /proc/<pid>/status");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmHWM is a number of kB")
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn a_worker_with_a_fifty_thousand_message_backlog_stays_under_its_memory_budget() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let case = async {
        // Arrange: the default budget and prefetch; payments that park for the whole case.
        let mut cluster = Cluster::new("memory_backlog", &[("PAYMENT_DELAY_MS", "600000")]).await;
        let worker = cluster.start("worker").await;
        backlog(&cluster, 50_000).await;

        // Act: let the worker take all it may.
        cluster
            .until("the worker to park a budget's worth of payments", Duration::from_secs(240), async || {
                cluster.scalar("select count(*) from orders where status = 'Processing'").await >= DEFAULT_MAX_IN_FLIGHT
            })
            .await;
        // A moment more, in which a worker without a budget would take more.
        tokio::time::sleep(Duration::from_secs(5)).await;

        // Assert: the jobs in flight are the budget's, the rest waits at the broker, and the
        // process's peak RSS is under 256 MiB.
        let processing = cluster.scalar("select count(*) from orders where status = 'Processing'").await;
        assert!(processing <= DEFAULT_MAX_IN_FLIGHT, "{processing} payments in flight, over the budget");
        let waiting = cluster.depth(&cluster.topology.queue(EventType::OrderCreated)).await;
        assert!(i64::from(waiting) >= 50_000 - DEFAULT_MAX_IN_FLIGHT, "only {waiting} messages left at the broker");
        let peak = peak_rss_kib(cluster.pid(worker).expect("the worker exited"));
        eprintln!("peak RSS with {processing} parked payments and {waiting} waiting: {} MiB", peak / 1024);
        if peak >= RSS_BUDGET_KIB {
            cluster.dump_logs();
        }
        assert!(peak < RSS_BUDGET_KIB, "peak RSS {} MiB is over the 256 MiB budget", peak / 1024);
    };
    tokio::time::timeout(Duration::from_secs(420), case).await.expect("the case took longer than 7 minutes");
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn a_worker_never_holds_more_jobs_than_its_budget_whatever_its_prefetch() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let case = async {
        // Arrange: a prefetch ten times the budget.
        let mut cluster = Cluster::new(
            "memory_budget",
            &[("PAYMENT_DELAY_MS", "600000"), ("WORKER_MAX_IN_FLIGHT", "150"), ("WORKER_PREFETCH", "1500")],
        )
        .await;
        cluster.start("worker").await;
        backlog(&cluster, 1_000).await;

        // Act.
        cluster
            .until("the worker to fill its budget", Duration::from_secs(120), async || {
                cluster.scalar("select count(*) from orders where status = 'Processing'").await >= 150
            })
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;

        // Assert: the budget, not the prefetch, bounds the jobs in flight. The cron function's
        // jobs hold no permit and the other queues are idle, so every permit is a payment's.
        let processing = cluster.scalar("select count(*) from orders where status = 'Processing'").await;
        assert!(processing <= 150, "{processing} payments in flight with a budget of 150");
        let waiting = cluster.depth(&cluster.topology.queue(EventType::OrderCreated)).await;
        assert!(waiting >= 1_000 - 150, "only {waiting} messages left at the broker");
    };
    tokio::time::timeout(Duration::from_secs(240), case).await.expect("the case took longer than 4 minutes");
}
