//! The relay and readiness under a misbehaving broker (issue 17 items 3 to 5):
//! - readiness by role: an API stays in rotation while the broker is down (the outbox takes the
//!   orders), a worker does not (it cannot consume);
//! - a RabbitMQ memory alarm blocks every publisher: orders are still taken, the relay holds no
//!   transaction while it waits, SIGTERM still ends the process within its shutdown budget, and
//!   every order goes out once the alarm clears, none twice;
//! - an outbox row the broker refuses every time is parked after `OUTBOX_MAX_ATTEMPTS`, never
//!   holds up the rows behind it, is counted, listed as a dead letter and replayed.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use shared::events::EventType;

use crate::cluster::{Cluster, ServicesGuard, run};

/// Connections of the cluster's database idle inside a transaction: what a relay holding row
/// locks across a blocked publish used to leave.
const IDLE_IN_TRANSACTION: &str = "select count(*) from pg_stat_activity
     where datname = current_database() and state like 'idle in transaction%'";

async fn alarms() -> String {
    let output = tokio::process::Command::new("rabbitmqctl")
        .args(["-q", "eval", "rabbit_alarm:get_alarms()."])
        .output()
        .await
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn readiness_keeps_an_api_in_rotation_while_the_broker_is_down_but_not_a_worker() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let _services = ServicesGuard;
    let mut cluster = Cluster::new("readiness-by-role", &[("PAYMENT_DELAY_MS", "100")]).await;
    let api = cluster.start("api").await;
    let worker = cluster.start("worker").await;
    assert_eq!((cluster.readiness(api).await, cluster.readiness(worker).await), (200, 200));

    run("rabbitmqctl", &["-q", "stop_app"]).await;
    cluster
        .until("the worker to notice the outage", Duration::from_secs(30), async || {
            cluster.readiness(worker).await == 503
        })
        .await;
    let during = cluster.create_orders(3).await;
    let api_during = cluster.readiness(api).await;
    let (_, body) = cluster.admin_request(Method::GET, "/health/ready", None).await;
    run("rabbitmqctl", &["-q", "start_app"]).await;

    assert_eq!(api_during, 200, "the API left rotation during a broker outage");
    assert_eq!(body["checks"]["broker"], "down", "{body}");
    assert!(body["checks"]["outboxUnsent"].as_i64().is_some_and(|n| n >= 3), "the backlog is shown: {body}");
    cluster.wait_ready(worker, Duration::from_secs(60)).await;
    cluster.settle(Duration::from_secs(90), false).await;
    cluster.check_invariants().await;
    for id in during {
        let status = cluster.status_of(id).await;
        assert_eq!(status, "Completed", "order {id} created during the outage");
    }
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn under_a_broker_memory_alarm_orders_are_taken_shutdown_works_and_all_go_out_once_after_it() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let _services = ServicesGuard;
    let shutdown_budget = Duration::from_secs(10);
    // A broker timeout longer than the shutdown budget: SIGTERM must not wait for it.
    let mut cluster = Cluster::new(
        "broker-alarm",
        &[("BROKER_TIMEOUT_SECS", "30"), ("PAYMENT_DELAY_MS", "100"), ("SHUTDOWN_TIMEOUT_SECS", "10")],
    )
    .await;
    let api = cluster.start("api").await;
    let worker = cluster.start("worker").await;
    cluster.create_orders(3).await;
    cluster.settle(Duration::from_secs(60), false).await;

    run("rabbitmqctl", &["-q", "set_vm_memory_high_watermark", "0.00001"]).await;
    cluster.until("the memory alarm to go off", Duration::from_secs(30), async || alarms().await != "[]").await;
    let during = cluster.create_orders(20).await;
    // Long enough for the relay to be stuck in a publish the broker blocks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unsent = cluster.scalar("select count(*) from outbox where sent_at is null").await;
    let api_ready = cluster.readiness(api).await;
    let idle_in_transaction = cluster.scalar(IDLE_IN_TRANSACTION).await;
    let (api_exit, api_status) = cluster.terminate(api).await;
    let (worker_exit, worker_status) = cluster.terminate(worker).await;
    // A new API with a short broker timeout, started (and taking orders) while the alarm holds:
    // its broker calls time out and are retried instead of hanging.
    let api = cluster.spawn("api", &[("BROKER_TIMEOUT_SECS", "2")]);
    cluster.wait_ready(api, Duration::from_secs(60)).await;
    cluster.start("worker").await;
    let after_restart = cluster.create_orders(5).await;
    cluster
        .until("the relay to time out on the blocked broker", Duration::from_secs(60), async || {
            cluster.log_lines_containing(api, "did not answer within 2s") > 0
        })
        .await;
    run("rabbitmqctl", &["-q", "set_vm_memory_high_watermark", "0.4"]).await;

    assert!(unsent >= 20, "the alarm blocked nothing ({unsent} rows unsent), so this case proves nothing");
    assert_eq!(api_ready, 200, "the API left rotation during the alarm");
    assert_eq!(idle_in_transaction, 0, "a connection sat idle in a transaction while the broker was blocked");
    for (name, exit, status) in [("api", api_exit, api_status), ("worker", worker_exit, worker_status)] {
        assert!(status.success(), "the {name} exited with {status} under the alarm");
        // The budget plus process slack; a relay waiting for the broker would take its 30 s.
        assert!(
            exit <= shutdown_budget + Duration::from_secs(5),
            "the {name} took {exit:?} to stop after SIGTERM under the alarm (budget {shutdown_budget:?})"
        );
    }
    assert!(
        cluster.log_lines_containing(0, "outbox batch abandoned at shutdown") > 0,
        "the blocked batch was not handed back"
    );
    cluster.settle(Duration::from_secs(120), false).await;
    cluster.check_invariants().await;
    assert_eq!(cluster.readiness(api).await, 200);
    for id in during.into_iter().chain(after_restart) {
        let status = cluster.status_of(id).await;
        assert_eq!(status, "Completed", "order {id}, created during the alarm");
    }
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn an_outbox_row_the_broker_keeps_refusing_is_parked_listed_and_replayed_without_holding_up_the_rest() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let _services = ServicesGuard;
    let mut cluster = Cluster::new("parked-outbox-row", &[("OUTBOX_MAX_ATTEMPTS", "3")]).await;
    // An API alone: no worker re-declares the queue this case deletes.
    let api = cluster.start("api").await;
    cluster.create_orders(1).await;
    cluster
        .until("the relay to publish", Duration::from_secs(30), async || {
            cluster.scalar("select count(*) from outbox where sent_at is null").await == 0
        })
        .await;
    let expired_queue = cluster.topology.queue(EventType::OrderExpired);
    run("rabbitmqctl", &["-q", "delete_queue", &expired_queue]).await;
    // An OrderExpired event for an order: its queue is gone, so the broker returns it.
    sqlx::query(
        "insert into outbox (message_id, event_type, order_id, payload, correlation_id)
         select gen_random_uuid(), 'OrderExpired', id, json_build_object('orderId', id, 'userId', 1), 'abuse-suite'
         from orders limit 1",
    )
    .execute(&cluster.pool)
    .await
    .unwrap();
    let parked_id: uuid::Uuid = sqlx::query_scalar("select message_id from outbox where event_type = 'OrderExpired'")
        .fetch_one(&cluster.pool)
        .await
        .unwrap();

    // The rows behind it go out while it waits.
    cluster.create_orders(3).await;
    cluster
        .until("the orders behind the refused row to be published", Duration::from_secs(30), async || {
            cluster.scalar("select count(*) from outbox where event_type = 'OrderCreated' and sent_at is null").await
                == 0
        })
        .await;
    cluster
        .until("the refused row to be parked", Duration::from_secs(60), async || {
            cluster.scalar("select count(*) from outbox where parked_at is not null").await == 1
        })
        .await;
    let (status, listed) = cluster.admin_request(Method::GET, "/api/dead-letters?queue=outbox", None).await;
    let cli = cluster.cli(&["dlq", "list", "--queue", "outbox"]).await;
    let (_, everything) = cluster.admin_request(Method::GET, "/api/dead-letters", None).await;
    let (_, health) = cluster.admin_request(Method::GET, "/health/ready", None).await;
    let metrics = reqwest::get(format!("{}/metrics", cluster.processes[api].http)).await.unwrap().text().await.unwrap();

    assert_eq!(status, 200, "{listed}");
    let letters = listed.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed}");
    let letter = &letters[0];
    assert_eq!(letter["messageId"], parked_id.to_string(), "{letter}");
    assert_eq!(letter["errorQueue"], "outbox", "{letter}");
    assert_eq!(letter["queue"], expired_queue.as_str(), "{letter}");
    assert_eq!(letter["attempts"], 3, "{letter}");
    assert!(letter["lastError"].as_str().is_some_and(|e| e.contains("unroutable")), "{letter}");
    assert!(everything.as_array().unwrap().iter().any(|l| l["messageId"] == parked_id.to_string()), "{everything}");
    let line = cli.lines().find(|l| l.starts_with(&parked_id.to_string())).unwrap_or_else(|| panic!("{cli}"));
    assert!(line.contains("(parked)") && line.contains("unroutable"), "{line}");
    assert_eq!(health["checks"]["outboxParked"], 1, "{health}");
    assert_eq!(health["checks"]["outboxUnsent"], 0, "a parked row counts as parked, not as backlog: {health}");
    assert!(metrics.contains("orderflow_outbox_parked 1"), "{metrics}");
    // Parked: no longer attempted.
    let attempts = cluster.scalar("select attempts::bigint from outbox where parked_at is not null").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.scalar("select attempts::bigint from outbox where event_type = 'OrderExpired'").await, attempts);

    // The cause fixed (a restarted API declares the missing queue), the row is replayed.
    cluster.terminate(api).await;
    cluster.start("api").await;
    let (status, replayed) = cluster
        .admin_request(Method::POST, "/api/dead-letters/replay", Some(json!({"queue": "outbox", "all": true})))
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    cluster
        .until("the replayed row to be published", Duration::from_secs(30), async || {
            cluster.scalar("select count(*) from outbox where sent_at is null").await == 0
        })
        .await;
    assert_eq!(cluster.depth(&expired_queue).await, 1, "the replayed event is in its queue, once");
    let (_, after) = cluster.admin_request(Method::GET, "/api/dead-letters?queue=outbox", None).await;
    assert_eq!(after, Value::Array(Vec::new()));
}
