//! The board in a real browser: headless Chromium (Debian's package) loads the UI behind basic
//! auth and visits every page that works without the vendor's paid features: Overview, Queues,
//! each queue's tabs (Workers and one per status), Tasks, a task's detail, Workers and Logs. A
//! page fails on a missing text, a console error or panic, or a failed request. Screenshots stay
//! under the build output (`target/tmp/board-screenshots`); README's come from there.
//!
//! Needs `chromium` and `node`, so it is ignored by default; `.ci/run` runs it with `--ignored`.

use std::{path::Path, time::Duration};

use reqwest::StatusCode;
use shared::events::EventType;

use crate::helpers::{TestApp, app, eventually, order_body};

/// The cron's schedule: a run every 5 s. A status tab lists 15 tasks, newest first, so the run
/// picked below stays on the first page of its Done tab for over a minute; its pages come first.
const SCHEDULE: &str = "*/5 * * * * *";

/// The tabs of a queue's page after its Workers tab.
const STATUSES: [&str; 6] = ["Pending", "Queued", "Running", "Done", "Failed", "Killed"];

/// The latest Done job's id in `queue`, once there is one.
async fn done_job(app: &TestApp, queue: &str) -> String {
    eventually(&format!("a Done job in {queue}"), Duration::from_secs(20), || async {
        sqlx::query_scalar(
            "select message_id from job_journal where queue = $1 and status = 'Done' order by enqueued_at desc limit 1",
        )
        .bind(queue)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    })
    .await
}

#[tokio::test]
#[ignore = "needs chromium and node; run with `cargo test --test api -- --ignored`"]
async fn every_free_page_of_the_board_renders_our_data_in_a_browser() {
    let app = app().with_functions().config(|c| c.expiry_schedule = SCHEDULE.into()).spawn().await;
    let token = app.admin_token().await;
    assert_eq!(app.create_order(&token, &order_body()).await.status(), StatusCode::CREATED);
    let created = app.queue(EventType::OrderCreated);
    let queues = [
        (created.clone(), "on_order_created"),
        (app.queue(EventType::OrderCompleted), "on_order_completed"),
        (app.queue(EventType::OrderExpired), "on_order_expired"),
        ("expire_orders".to_owned(), "expire_orders"),
    ];
    // An order stuck in Processing for a day: the cron expires it, so every event queue has a job.
    sqlx::query(
        "insert into orders (user_id, product_id, quantity, price, total, status, updated_at)
         values (1, 2, 1, 9.99, 9.99, 'Processing', now() - interval '1 day')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let order_job = done_job(&app, &created).await;
    let expired_job = done_job(&app, &app.queue(EventType::OrderExpired)).await;
    let cron_run = done_job(&app, "expire_orders").await;
    let names: Vec<&str> = queues.iter().map(|(queue, _)| queue.as_str()).collect();

    // `<path>=<text>,…`: what each page must show; `!<text>` what it must not.
    let mut pages = vec![
        format!("/queues/expire_orders/Done=expire_orders,{cron_run}"),
        format!("/queues/expire_orders/tasks/{cron_run}=scheduledAt,orders expired,Done"),
        format!("/queues/{created}/tasks/{order_job}=orderId,{created},Done"),
        format!("/=Overview,Total Jobs,Done Jobs,{},!Error: ", names.join(",")),
        format!("/queues={},SCHEDULE,{SCHEDULE},NEXT_RUN,LAST_RUN,Done at,ORDERS_EXPIRED", names.join(",")),
    ];
    for (queue, function) in &queues {
        pages.push(format!("/queues/{queue}={queue},{function}@,RabbitMQ (apalis-amqp)"));
        for status in STATUSES {
            let done = match status {
                "Done" if *queue == created => format!(",{order_job}"),
                "Done" if *queue == app.queue(EventType::OrderExpired) => format!(",{expired_job}"),
                _ => String::new(),
            };
            pages.push(format!("/queues/{queue}/{status}={queue},Task Id{done}"));
        }
    }
    let workers: Vec<String> = queues.iter().map(|(_, function)| format!("{function}@")).collect();
    pages.extend([
        "/tasks=Tasks,Task Id".to_owned(),
        "/tasks/Done=Tasks,expire_orders".to_owned(),
        format!("/workers=Workers,{}", workers.join(",")),
        "/logs=Logs,debug,trace".to_owned(),
    ]);
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("board-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/board.mjs");
    // Only this run's screenshots: the directory is kept afterwards.
    let _ = std::fs::remove_dir_all(&screenshots);

    let output = tokio::process::Command::new("node")
        .arg("--experimental-websocket")
        .arg(&script)
        .arg(app.board_address.as_ref().unwrap())
        .args(["admin@example.com", "admin123"])
        .arg(&screenshots)
        .args(&pages)
        .output()
        .await
        .expect("node is not installed");

    let report = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    for shot in ["queues.png".to_owned(), format!("queues_{created}_tasks_{order_job}.png")] {
        assert!(screenshots.join(&shot).exists(), "no {shot}: {report}");
    }
}
