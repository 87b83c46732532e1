//! The board in a real browser: headless Chromium (Debian's package) loads the UI behind basic
//! auth, waits for the WASM app to render, and finds a Done `on_order_created` job and an
//! `expire_orders` run. Screenshots go under the build output (`target/tmp/board-screenshots`).
//!
//! Needs `chromium` and `node`, so it is ignored by default; `.ci/run` runs it with `--ignored`.

use std::{path::Path, time::Duration};

use reqwest::StatusCode;
use shared::events::EventType;

use crate::helpers::{app, eventually, order_body};

#[tokio::test]
#[ignore = "needs chromium and node; run with `cargo test --test api -- --ignored`"]
async fn the_board_shows_a_done_order_job_and_a_cron_run_in_a_browser() {
    // A run every 3 s: the board lists ten runs a page, newest first, so the run picked below
    // stays on the first page for half a minute, long enough for the browser to get there.
    let app = app().with_functions().config(|c| c.expiry_schedule = "*/3 * * * * *".into()).spawn().await;
    let token = app.admin_token().await;
    assert_eq!(app.create_order(&token, &order_body()).await.status(), StatusCode::CREATED);
    let created_queue = app.queue(EventType::OrderCreated);
    let done_job: String = eventually("a Done on_order_created job", Duration::from_secs(15), || async {
        sqlx::query_scalar("select message_id from job_journal where function = 'on_order_created' and status = 'Done'")
            .fetch_optional(&app.pool)
            .await
            .unwrap()
    })
    .await;
    let cron_run: String = eventually("a Done expire_orders run", Duration::from_secs(15), || async {
        sqlx::query_scalar(
            "select message_id from job_journal where queue = 'expire_orders' and status = 'Done'
             order by enqueued_at desc limit 1",
        )
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    })
    .await;
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("board-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/board.mjs");

    let output = tokio::process::Command::new("node")
        .arg("--experimental-websocket")
        .arg(&script)
        .arg(app.board_address.as_ref().unwrap())
        .args(["admin@example.com", "admin123"])
        .arg(&screenshots)
        .arg(format!("/queues/{created_queue}/Done={done_job},Done"))
        .arg(format!("/queues/expire_orders/Done={cron_run}"))
        .arg(format!("/queues/expire_orders/tasks/{cron_run}=scheduledAt,orders expired"))
        .arg(format!("/queues/{created_queue}/tasks/{done_job}=orderId,{}", app.config.queue_prefix))
        .output()
        .await
        .expect("node is not installed");

    let report = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert!(screenshots.join("queues_expire_orders_Done.png").exists(), "{report}");
}
