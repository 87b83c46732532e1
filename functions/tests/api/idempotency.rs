use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{order_body, spawn_app};

async fn create_with_key(app: &crate::helpers::TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_identical_creates_with_one_key_return_the_same_order_and_one_outbox_row() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let first = create_with_key(&app, &token, "key-1", &order_body()).await;
    let second = create_with_key(&app, &token, "key-1", &order_body()).await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let (first, second): (Value, Value) = (first.json().await.unwrap(), second.json().await.unwrap());
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("outbox").await, 1);
}

#[tokio::test]
async fn concurrent_creates_with_one_key_create_one_order() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let body = order_body();
    let attempts = (0..8).map(|_| create_with_key(&app, &token, "same-key", &body));
    let responses = futures::future::join_all(attempts).await;

    let mut ids = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
        ids.push(response.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "different orders for one key: {ids:?}");
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("outbox").await, 1);
}

#[tokio::test]
async fn a_key_reused_for_a_different_order_is_a_conflict() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let first = create_with_key(&app, &token, "key-2", &order_body()).await;
    let other = json!({ "userId": 1, "productId": 1, "quantity": 1, "price": 5 });
    let second = create_with_key(&app, &token, "key-2", &other).await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(second.json::<Value>().await.unwrap()["error"]["code"], "idempotency_key_reused");
    assert_eq!(app.count("orders").await, 1);
}

#[tokio::test]
async fn an_overlong_key_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let response = create_with_key(&app, &token, &"k".repeat(300), &order_body()).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["field"], "Idempotency-Key");
    assert_eq!(app.count("orders").await, 0);
}

#[tokio::test]
async fn an_expired_idempotency_key_no_longer_replays_and_the_sweep_prunes_old_keys() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let first: Value = create_with_key(&app, &token, "old-key", &order_body()).await.json().await.unwrap();
    create_with_key(&app, &token, "stale-key", &order_body()).await;
    create_with_key(&app, &token, "fresh-key", &order_body()).await;
    // Older than IDEMPOTENCY_TTL_HOURS (24 by default).
    sqlx::query("update idempotency_keys set created_at = now() - interval '25 hours' where key <> 'fresh-key'")
        .execute(&app.pool)
        .await
        .unwrap();

    let again = create_with_key(&app, &token, "old-key", &order_body()).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(again.headers().get("idempotent-replayed").is_none());
    let again: Value = again.json().await.unwrap();
    assert_ne!(again["id"], first["id"], "an expired key must not replay");

    crate::helpers::sweep(&app, shared::retention::RetentionSettings::from_config(&app.config)).await;

    let keys: Vec<String> =
        sqlx::query_scalar("select key from idempotency_keys order by key").fetch_all(&app.pool).await.unwrap();
    // old-key was taken again (fresh), stale-key expired and was pruned.
    assert_eq!(keys, ["fresh-key", "old-key"]);
}
