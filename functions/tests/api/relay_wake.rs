//! The functions wake the outbox relay when they commit an event, so it leaves at once: with
//! `OUTBOX_POLL_MS` at a minute, an event that waited for the next poll would miss every
//! deadline here by far.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use shared::payments::PaymentOutcome;

use crate::{
    gateways::ScriptedGateway,
    helpers::{TestApp, TestAppBuilder, app, eventually, notifications_of, order_body},
};

/// The relay polls once a minute: only a wake-up gets an event out within these tests.
const LONG_POLL_MS: u64 = 60_000;

/// Well under [`LONG_POLL_MS`], and ample for a wake-up on a loaded machine.
const SOON: Duration = Duration::from_secs(15);

fn slow_polling_app() -> TestAppBuilder {
    app().with_functions().config(|c| c.outbox_poll_ms = LONG_POLL_MS)
}

async fn create_order(app: &TestApp) -> i64 {
    let token = app.admin_token().await;
    let response = app.create_order(&token, &order_body()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn notified_soon(app: &TestApp, id: i64, kind: &str) {
    eventually(&format!("the {kind} notification of order {id}, long before the next poll"), SOON, || async {
        (notifications_of(&app.pool, id, kind).await == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_completion_wakes_the_relay_so_order_completed_leaves_before_the_next_poll() {
    // The payment takes a moment, so that the wake-up the order's creation left is used up by
    // then and only the completion's own can get its event out.
    let app = slow_polling_app().config(|c| c.payment_delay_ms = 300).spawn().await;

    let id = create_order(&app).await;

    notified_soon(&app, id, "OrderCompleted").await;
}

#[tokio::test]
async fn an_expiry_batch_wakes_the_relay_so_order_expired_leaves_before_the_next_poll() {
    let app = slow_polling_app()
        .payments(ScriptedGateway::new(|_| Ok(PaymentOutcome::Declined)))
        .config(|c| {
            c.order_ttl_secs = 1;
            c.expiry_schedule = "* * * * * *".into();
        })
        .spawn()
        .await;

    let id = create_order(&app).await;

    notified_soon(&app, id, "OrderExpired").await;
}
