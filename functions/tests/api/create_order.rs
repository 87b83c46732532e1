use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use shared::events::{EventType, OrderCreated};

use crate::helpers::{amqp_channel, eventually, order_body, queue_depth, spawn_app, take_message};

#[tokio::test]
async fn creating_an_order_returns_it_with_the_exact_total_and_writes_one_outbox_row() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let response = app
        .create_order(&token, &serde_json::json!({ "userId": 1, "productId": 3, "quantity": 3, "price": 0.1 }))
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    // Exact money: 0.1 × 3 is 0.30, written with two decimals, not 0.30000000000000004.
    assert!(text.contains(r#""total":0.30"#), "{text}");
    assert!(text.contains(r#""price":0.10"#), "{text}");
    let order: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(order["status"], "Pending");
    assert_eq!(location, format!("/api/orders/{}", order["id"]));

    let (orders, outbox): (i64, i64) = (app.count("orders").await, app.count("outbox").await);
    assert_eq!((orders, outbox), (1, 1));
    let (event_type, payload): (String, String) =
        sqlx::query_as("select event_type, payload::text from outbox").fetch_one(&app.pool).await.unwrap();
    assert_eq!(event_type, "OrderCreated");
    let event: OrderCreated = serde_json::from_str(&payload).unwrap();
    assert_eq!(event.order_id, order["id"].as_i64().unwrap());
    assert_eq!(event.total.to_string(), "0.30");
}

#[tokio::test]
async fn the_relay_publishes_exactly_one_persistent_message_with_ids() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let channel = amqp_channel().await.unwrap();
    let queue = app.queue(EventType::OrderCreated);

    let response = app
        .client
        .post(app.url("/api/orders"))
        .bearer_auth(&token)
        .header("x-request-id", "req-for-correlation")
        .json(&order_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();

    eventually("the outbox row to be marked sent", Duration::from_secs(10), || async {
        let unsent: i64 =
            sqlx::query_scalar("select count(*) from outbox where sent_at is null").fetch_one(&app.pool).await.unwrap();
        (unsent == 0).then_some(())
    })
    .await;
    assert_eq!(queue_depth(&channel, &queue).await, 1);
    let message = take_message(&channel, &queue).await.expect("a message");
    let properties = &message.delivery.properties;
    assert_eq!(properties.delivery_mode(), &Some(2), "not persistent");
    let message_id: String =
        sqlx::query_scalar("select message_id::text from outbox").fetch_one(&app.pool).await.unwrap();
    assert_eq!(properties.message_id().as_ref().map(ToString::to_string), Some(message_id));
    assert_eq!(properties.correlation_id().as_ref().map(ToString::to_string).as_deref(), Some("req-for-correlation"));
    let event: OrderCreated = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(event.order_id, order["id"].as_i64().unwrap());
    assert_eq!(queue_depth(&channel, &queue).await, 0, "exactly one message");
}

#[tokio::test]
async fn a_price_of_exactly_the_maximum_is_accepted_and_one_cent_more_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let body = |price: &str| {
        let text = format!(r#"{{"userId":1,"productId":1,"quantity":1,"price":{price}}}"#);
        serde_json::from_str::<Value>(&text).unwrap()
    };

    let at_most = app.create_order(&token, &body("1000000.00")).await;
    let above = app.create_order(&token, &body("1000000.01")).await;

    assert_eq!(at_most.status(), StatusCode::CREATED, "the maximum price itself is refused");
    let text = at_most.text().await.unwrap();
    assert!(text.contains(r#""price":1000000.00"#), "{text}");
    assert_eq!(above.status(), StatusCode::BAD_REQUEST);
    let error: Value = above.json().await.unwrap();
    assert_eq!(error["error"]["field"], "price", "{error}");
    assert_eq!(app.count("orders").await, 1);
}

#[tokio::test]
async fn ids_and_quantities_written_as_integral_floats_are_the_integers_the_document_allows() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    // JSON Schema's `integer` admits 3.0 and 2e0; the document says `integer`, so the server must too.
    let response = app
        .create_order(&token, &serde_json::json!({ "userId": 1.0, "productId": 2e0, "quantity": 3.0, "price": 1.5 }))
        .await;
    let fraction = app
        .create_order(&token, &serde_json::json!({ "userId": 1, "productId": 2, "quantity": 3.5, "price": 1.5 }))
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        (order["userId"].as_i64(), order["productId"].as_i64(), order["quantity"].as_i64()),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(fraction.status(), StatusCode::BAD_REQUEST);
    let error: Value = fraction.json().await.unwrap();
    assert_eq!(error["error"]["field"], "quantity");
}
