use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn orders_are_listed_newest_first_by_page_and_status() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for quantity in 1..=5 {
        let body = json!({ "userId": 1, "productId": 1, "quantity": quantity, "price": 1 });
        assert_eq!(app.create_order(&token, &body).await.status(), StatusCode::CREATED);
    }

    let page: Value = app.get(&token, "/api/orders?page=2&pageSize=2").await.json().await.unwrap();
    let pending: Value = app.get(&token, "/api/orders?status=Pending").await.json().await.unwrap();
    let completed: Value = app.get(&token, "/api/orders?status=Completed").await.json().await.unwrap();

    assert_eq!((page["total"].as_i64(), page["totalCapped"].as_bool()), (Some(5), Some(false)));
    assert_eq!((page["page"].as_i64(), page["pageSize"].as_i64()), (Some(2), Some(2)));
    let quantities: Vec<_> =
        page["items"].as_array().unwrap().iter().map(|o| o["quantity"].as_i64().unwrap()).collect();
    assert_eq!(quantities, vec![3, 2]);
    assert_eq!(pending["total"], 5);
    assert_eq!(completed["total"], 0);
    assert_eq!(completed["items"], json!([]));
    assert_eq!(completed["nextAfter"], Value::Null);
}

#[tokio::test]
async fn the_after_cursor_walks_every_order_once_newest_first() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let mut created = Vec::new();
    for quantity in 1..=7 {
        let body = json!({ "userId": 1, "productId": 1, "quantity": quantity, "price": 1 });
        let order: Value = app.create_order(&token, &body).await.json().await.unwrap();
        created.push(order["id"].as_i64().unwrap());
    }

    let mut seen = Vec::new();
    let mut path = "/api/orders?pageSize=3".to_owned();
    loop {
        let page: Value = app.get(&token, &path).await.json().await.unwrap();
        assert_eq!(page["total"], 7, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()));
        match page["nextAfter"].as_i64() {
            Some(after) => path = format!("/api/orders?pageSize=3&after={after}"),
            None => break,
        }
    }

    created.reverse();
    assert_eq!(seen, created);
}

#[tokio::test]
async fn an_order_is_fetched_by_id_and_a_missing_one_is_404() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let created: Value = app.create_order(&token, &crate::helpers::order_body()).await.json().await.unwrap();

    let found = app.get(&token, &format!("/api/orders/{}", created["id"])).await;
    let missing = app.get(&token, "/api/orders/424242").await;

    assert_eq!(found.status(), StatusCode::OK);
    assert_eq!(found.json::<Value>().await.unwrap(), created);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");
}

#[tokio::test]
async fn seeded_products_and_users_are_listed_without_password_hashes() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let products: Value = app.get(&token, "/api/products").await.json().await.unwrap();
    let users = app.get(&token, "/api/users").await.text().await.unwrap();

    assert!(products.as_array().unwrap().len() >= 3);
    assert_eq!(products[0]["id"], 1);
    assert!(products[0]["price"].is_number());
    assert!(users.contains("admin@example.com"));
    assert!(!users.contains("argon2") && !users.to_lowercase().contains("password"), "{users}");
}

#[tokio::test]
async fn notifications_can_be_filtered_by_order_and_type() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let created: Value = app.create_order(&token, &crate::helpers::order_body()).await.json().await.unwrap();
    sqlx::query("insert into notifications (order_id, type, message, metadata) values ($1, 'OrderCompleted', 'done', '{\"userId\": 1}')")
        .bind(created["id"].as_i64().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();

    let all: Value = app.get(&token, "/api/notifications").await.json().await.unwrap();
    let of_order: Value = app
        .get(&token, &format!("/api/notifications?orderId={}&type=OrderCompleted", created["id"]))
        .await
        .json()
        .await
        .unwrap();
    let expired: Value = app.get(&token, "/api/notifications?type=OrderExpired").await.json().await.unwrap();

    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(of_order[0]["type"], "OrderCompleted");
    assert_eq!(of_order[0]["metadata"]["userId"], 1);
    assert_eq!(expired, json!([]));
}

#[tokio::test]
async fn health_and_metrics_answer_without_a_token() {
    let app = spawn_app().await;

    let live = app.client.get(app.url("/health/live")).send().await.unwrap();
    let checks = crate::helpers::eventually("readiness, the relay connected", Duration::from_secs(10), || async {
        let response = app.client.get(app.url("/health/ready")).send().await.unwrap();
        let ready = response.status() == StatusCode::OK;
        let checks = response.json::<Value>().await.unwrap()["checks"].clone();
        (ready && checks["broker"] == "up").then_some(checks)
    })
    .await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();

    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!((&checks["database"], &checks["broker"], &checks["outbox"]), (&json!("up"), &json!("up"), &json!("up")));
    assert!(
        metrics.contains(r#"orderflow_http_requests_total{method="GET",route="/health/live",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("orderflow_outbox_unsent 0"), "{metrics}");
    assert!(metrics.contains("orderflow_outbox_parked 0"), "{metrics}");
}

#[tokio::test]
async fn the_api_documents_itself_without_a_token() {
    let app = spawn_app().await;

    let spec: Value = app.client.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let redirect = app.client.get(app.url("/docs")).send().await.unwrap();
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    let initializer = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap();

    assert_eq!(spec["info"]["title"], "orderflow");
    let create = &spec["paths"]["/api/orders"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateOrderRequest"
    );
    for status in ["201", "400", "401", "409", "413", "422"] {
        assert!(create["responses"][status].is_object(), "POST /api/orders does not document {status}");
    }
    assert_eq!(spec["components"]["schemas"]["Money"]["type"], "number");
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(redirect.status().is_redirection(), "{}", redirect.status());
    assert_eq!(redirect.headers()["location"], "/docs/");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(docs.text().await.unwrap().contains("swagger-initializer.js"), "the page starts Swagger UI");
    assert!(initializer.text().await.unwrap().contains("/api/openapi.json"), "the page loads the document");
}

#[tokio::test]
async fn an_api_stays_ready_while_its_outbox_lags_and_shows_the_lag_until_it_caught_up() {
    // The relay polls only every ten minutes here: between polls it runs only when this process
    // commits an outbox row, so a row written behind its back waits.
    let app = crate::helpers::spawn_app_with(|c| {
        c.outbox_lag_limit_secs = 60;
        c.outbox_poll_ms = 600_000;
    })
    .await;
    let outbox_check = async || {
        let response = app.client.get(app.url("/health/ready")).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (status, body)
    };
    crate::helpers::eventually("the relay to connect", Duration::from_secs(10), || async {
        let (_, body) = outbox_check().await;
        (body["checks"]["broker"] == "up").then_some(())
    })
    .await;
    // An event written ten minutes ago and not published yet.
    sqlx::query(
        "insert into outbox (message_id, event_type, order_id, payload, correlation_id, created_at)
         values (gen_random_uuid(), 'OrderExpired', 999, '{\"orderId\": 999, \"userId\": 1}', 'lag-test',
                 now() - interval '10 minutes')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let (status, body) = outbox_check().await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["outbox"], "lagging", "{body}");
    assert_eq!(body["checks"]["outboxUnsent"], 1, "{body}");
    assert!(body["checks"]["outboxOldestUnsentSecs"].as_i64().is_some_and(|s| s >= 600), "{body}");

    // A new order wakes the relay, which publishes the backlog with it.
    let token = app.admin_token().await;
    assert_eq!(app.create_order(&token, &crate::helpers::order_body()).await.status(), StatusCode::CREATED);
    crate::helpers::eventually("the outbox once the relay published the row", Duration::from_secs(15), || async {
        let (_, body) = outbox_check().await;
        (body["checks"]["outbox"] == "up" && body["checks"]["outboxUnsent"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_worker_is_not_ready_while_it_cannot_reach_the_broker_and_an_api_is() {
    let unreachable = |c: &mut shared::Config| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        c.amqp_url = format!("amqp://guest:guest@{}/%2f", listener.local_addr().unwrap());
    };
    let worker = crate::helpers::app()
        .role(orderflow::app::Role::Worker(orderflow::registry::Function::ALL.to_vec()))
        .config(unreachable)
        .spawn()
        .await;
    let api = crate::helpers::app().config(unreachable).spawn().await;

    let worker_ready = worker.client.get(worker.url("/health/ready")).send().await.unwrap();
    let api_ready = api.client.get(api.url("/health/ready")).send().await.unwrap();

    assert_eq!(worker_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(worker_ready.headers().contains_key("retry-after"));
    let body: Value = worker_ready.json().await.unwrap();
    assert_eq!((&body["checks"]["database"], &body["checks"]["broker"]), (&json!("up"), &json!("down")), "{body}");
    assert_eq!(body["error"]["code"], "dependency_unavailable", "{body}");
    assert_eq!(api_ready.status(), StatusCode::OK);
    assert_eq!(api_ready.json::<Value>().await.unwrap()["checks"]["broker"], "down");
}
