//! Dead letters: listed with their errors (HTTP and CLI), replayed after the cause is fixed,
//! and harmless when replayed after their effect already happened. Plus the job metrics.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{
    events::EventType,
    payments::{PaymentError, PaymentOutcome},
};

use crate::{
    gateways::ScriptedGateway,
    helpers::{
        TestApp, amqp_channel, app, eventually, order_body, order_status, outbox_rows, publish_raw, queue_depth,
    },
};

async fn create_order(app: &TestApp) -> i64 {
    let token = app.admin_token().await;
    let response = app.create_order(&token, &order_body()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn wait_for_dead_letters(app: &TestApp, event: EventType, count: u32) {
    let channel = amqp_channel().await.unwrap();
    let error_queue = app.topology().error_queue(event);
    eventually(&format!("{count} message(s) in {error_queue}"), Duration::from_secs(15), || async {
        (queue_depth(&channel, &error_queue).await == count).then_some(())
    })
    .await;
}

/// A gateway that fails ("card processor down") until the flag is cleared, then approves.
fn broken_gateway() -> (Arc<AtomicBool>, Arc<ScriptedGateway>) {
    let broken = Arc::new(AtomicBool::new(true));
    let gateway = ScriptedGateway::new({
        let broken = broken.clone();
        move |_| {
            if broken.load(Ordering::SeqCst) {
                Err(PaymentError("card processor down".into()))
            } else {
                Ok(PaymentOutcome::Approved)
            }
        }
    });
    (broken, gateway)
}

#[tokio::test]
async fn a_poisoned_message_is_listed_with_its_error_and_completes_when_replayed_after_the_fix() {
    let (broken, gateway) = broken_gateway();
    let app = app().with_functions().payments(gateway.clone()).config(|c| c.max_retries = 1).spawn().await;
    let id = create_order(&app).await;
    wait_for_dead_letters(&app, EventType::OrderCreated, 1).await;
    let message_id = app.message_id_of(id).await;
    app.job_in_status(&message_id, "Killed").await;
    let token = app.admin_token().await;

    let listed: Value = app.get(&token, "/api/dead-letters").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["messageId"], message_id.as_str());
    assert_eq!(listed[0]["queue"], app.queue(EventType::OrderCreated));
    assert_eq!(listed[0]["attempts"], 2);
    assert!(listed[0]["lastError"].as_str().unwrap().contains("card processor down"), "{listed}");
    // Listing leaves the message where it is.
    wait_for_dead_letters(&app, EventType::OrderCreated, 1).await;

    broken.store(false, Ordering::SeqCst);
    let replay = app
        .client
        .post(app.url("/api/dead-letters/replay"))
        .bearer_auth(&token)
        .json(&json!({ "id": message_id }))
        .send()
        .await
        .unwrap();

    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.json::<Value>().await.unwrap()["replayed"], 1);
    eventually("the replayed order to complete", Duration::from_secs(15), || async {
        (order_status(&app.pool, id).await == "Completed").then_some(())
    })
    .await;
    wait_for_dead_letters(&app, EventType::OrderCreated, 0).await;
    assert_eq!(outbox_rows(&app.pool, "OrderCompleted").await, 1);
}

#[tokio::test]
async fn replaying_messages_whose_effect_already_happened_changes_nothing() {
    let gateway = ScriptedGateway::approving();
    let app = app().with_functions().payments(gateway.clone()).spawn().await;
    let id = create_order(&app).await;
    eventually("the order to be notified", Duration::from_secs(15), || async {
        let notified: i64 = sqlx::query_scalar("select count(*) from notifications where order_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (notified == 1).then_some(())
    })
    .await;
    // Copies of both events land in the error queues, as if they had been dead-lettered late.
    let created = json!({ "orderId": id, "userId": 1, "productId": 2, "total": 29.97 }).to_string();
    let completed = json!({ "orderId": id, "userId": 1, "total": 29.97 }).to_string();
    publish_raw(&app.topology().error_queue(EventType::OrderCreated), created.as_bytes(), "late-created").await;
    publish_raw(&app.topology().error_queue(EventType::OrderCompleted), completed.as_bytes(), "late-completed").await;
    let token = app.admin_token().await;

    for queue in [EventType::OrderCreated, EventType::OrderCompleted] {
        let response = app
            .client
            .post(app.url("/api/dead-letters/replay"))
            .bearer_auth(&token)
            .json(&json!({ "queue": queue.queue(), "all": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap()["replayed"], 1);
    }

    for message_id in ["late-created", "late-completed"] {
        app.job_in_status(message_id, "Done").await;
    }
    assert_eq!(order_status(&app.pool, id).await, "Completed");
    assert_eq!(gateway.calls(), 1, "charged again");
    assert_eq!(outbox_rows(&app.pool, "OrderCompleted").await, 1);
    let notifications: i64 =
        sqlx::query_scalar("select count(*) from notifications").fetch_one(&app.pool).await.unwrap();
    assert_eq!(notifications, 1);
}

/// Runs `orderflow <args>` against the app's database, broker and queue names.
async fn orderflow_cli(app: &TestApp, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(args)
        .env("DATABASE_URL", &app.config.database_url)
        .env("AMQP_URL", &app.config.amqp_url)
        .env("QUEUE_PREFIX", &app.config.queue_prefix)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "orderflow {args:?}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn the_cli_lists_dead_letters_with_attempts_and_errors_and_replays_them() {
    let (broken, gateway) = broken_gateway();
    let app = app().with_functions().payments(gateway.clone()).config(|c| c.max_retries = 0).spawn().await;
    let id = create_order(&app).await;
    wait_for_dead_letters(&app, EventType::OrderCreated, 1).await;
    let message_id = app.message_id_of(id).await;
    app.job_in_status(&message_id, "Killed").await;

    let stdout = orderflow_cli(&app, &["dlq", "list", "--queue", "order-created-event"]).await;

    let line = stdout.lines().find(|l| l.contains(&message_id)).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(&app.queue(EventType::OrderCreated)), "{line}");
    assert!(line.contains("card processor down"), "{line}");
    // MAX_RETRIES = 0: one attempt, in the attempts column between the queue and the error.
    let after_queue = line.split_once(&app.queue(EventType::OrderCreated)).unwrap().1;
    assert_eq!(after_queue.split_whitespace().next(), Some("1"), "attempts: {line}");
    assert!(stdout.contains("1 dead letter(s)"), "{stdout}");

    broken.store(false, Ordering::SeqCst);
    let replayed = orderflow_cli(&app, &["dlq", "replay", "--queue", "order-created-event", "--all"]).await;

    assert!(replayed.contains(&message_id), "{replayed}");
    eventually("the replayed order to complete", Duration::from_secs(15), || async {
        (order_status(&app.pool, id).await == "Completed").then_some(())
    })
    .await;
    wait_for_dead_letters(&app, EventType::OrderCreated, 0).await;
    assert_eq!(gateway.calls(), 2, "one failed charge, one after the replay");
}

#[tokio::test]
async fn only_admins_may_see_or_replay_dead_letters() {
    let app = app().spawn().await;
    app.create_user("ada@example.com", "ada's own password", false).await;
    let user = app.token_of("ada@example.com", "ada's own password").await;

    let list = app.get(&user, "/api/dead-letters").await;
    let replay = app
        .client
        .post(app.url("/api/dead-letters/replay"))
        .bearer_auth(&user)
        .json(&json!({ "id": "x" }))
        .send()
        .await
        .unwrap();

    for response in [list, replay] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "forbidden");
    }
}

/// The value of a metric line starting with `prefix`, or 0 when absent.
fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn job_metrics_count_successes_retries_and_dead_letters() {
    // The first order fails once, then pays; the second always fails.
    let first = Arc::new(std::sync::Mutex::new(None));
    let gateway = ScriptedGateway::new({
        let first = first.clone();
        move |call| {
            let first_order = *first.lock().unwrap().get_or_insert(call.order_id);
            match (call.order_id == first_order, call.nth_for_order) {
                (true, 0) | (false, _) => Err(PaymentError("declined by the network".into())),
                (true, _) => Ok(PaymentOutcome::Approved),
            }
        }
    });
    let app = app().with_functions().payments(gateway).config(|c| c.max_retries = 2).spawn().await;
    let first_id = create_order(&app).await;
    eventually("the first order to complete", Duration::from_secs(15), || async {
        (order_status(&app.pool, first_id).await == "Completed").then_some(())
    })
    .await;
    create_order(&app).await;
    wait_for_dead_letters(&app, EventType::OrderCreated, 1).await;

    let label = r#"{function="on_order_created"}"#;
    let metrics = eventually("the dead letter to be counted", Duration::from_secs(5), || async {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        (metric(&metrics, &format!("orderflow_jobs_dead_lettered_total{label}")) == 1.0).then_some(metrics)
    })
    .await;

    // Order 1: fail (retried), succeed. Order 2: fail, fail (both retried), fail (dead-lettered).
    assert_eq!(metric(&metrics, &format!("orderflow_jobs_succeeded_total{label}")), 1.0, "{metrics}");
    assert_eq!(metric(&metrics, &format!("orderflow_jobs_failed_total{label}")), 4.0, "{metrics}");
    assert_eq!(metric(&metrics, &format!("orderflow_jobs_retried_total{label}")), 3.0, "{metrics}");
    assert_eq!(metric(&metrics, &format!("orderflow_job_duration_seconds_count{label}")), 5.0, "{metrics}");
    assert!(metric(&metrics, r#"orderflow_jobs_succeeded_total{function="on_order_completed"}"#) >= 1.0, "{metrics}");
}

#[tokio::test]
async fn a_parked_outbox_row_is_listed_under_outbox_and_a_replay_hands_it_back_to_the_relay() {
    let app = app().spawn().await;
    let token = app.admin_token().await;
    // A row the broker refused OUTBOX_MAX_ATTEMPTS times, parked.
    let message_id: uuid::Uuid = sqlx::query_scalar(
        "insert into outbox (message_id, event_type, order_id, payload, correlation_id, attempts, rejections, last_error, parked_at)
         values (gen_random_uuid(), 'OrderExpired', 1, '{\"orderId\": 1, \"userId\": 1}', 'parked-test', 5, 5, 'message unroutable', now())
         returning message_id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();

    let listed: Value = app.get(&token, "/api/dead-letters?queue=outbox").await.json().await.unwrap();
    let of_its_event: Value =
        app.get(&token, "/api/dead-letters?queue=order-expired-event").await.json().await.unwrap();
    let replay = app
        .client
        .post(app.url("/api/dead-letters/replay"))
        .bearer_auth(&token)
        .json(&json!({ "id": message_id.to_string(), "queue": "outbox" }))
        .send()
        .await
        .unwrap();

    let letter = &listed.as_array().unwrap()[..];
    assert_eq!(letter.len(), 1, "{listed}");
    assert_eq!(letter[0]["messageId"], message_id.to_string());
    assert_eq!((letter[0]["errorQueue"].as_str(), letter[0]["reason"].as_str()), (Some("outbox"), Some("parked")));
    assert_eq!(letter[0]["queue"], app.queue(EventType::OrderExpired));
    assert_eq!(
        (letter[0]["attempts"].as_i64(), letter[0]["lastError"].as_str()),
        (Some(5), Some("message unroutable"))
    );
    assert!(
        of_its_event.as_array().unwrap().iter().any(|l| l["messageId"] == message_id.to_string()),
        "{of_its_event}"
    );
    assert_eq!(replay.status(), StatusCode::OK);
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    assert_eq!(replayed["messages"][0]["messageId"], message_id.to_string());
    // Back in the relay's work list, with a fresh count of refusals: it goes out.
    eventually("the replayed row to be published", Duration::from_secs(15), || async {
        let sent: bool =
            sqlx::query_scalar("select sent_at is not null and parked_at is null from outbox where message_id = $1")
                .bind(message_id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        sent.then_some(())
    })
    .await;
    let channel = amqp_channel().await.unwrap();
    assert_eq!(queue_depth(&channel, &app.queue(EventType::OrderExpired)).await, 1);
}
