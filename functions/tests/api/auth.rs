use chrono::Utc;
use orderflow::http::{AuthUser, TokenKeys};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_admin_logs_in_with_the_seeded_password() {
    let app = spawn_app().await;

    let response = app.login("admin@example.com", "admin123").await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "not a JWT: {body}");
    let expires_at: chrono::DateTime<Utc> = body["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(expires_at > Utc::now());
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_refused_alike() {
    let app = spawn_app().await;

    for (email, password) in [("admin@example.com", "wrong"), ("nobody@example.com", "admin123")] {
        let response = app.login(email, password).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_credentials");
    }
}

#[tokio::test]
async fn protected_routes_reject_missing_forged_and_expired_tokens() {
    let app = spawn_app().await;
    let forged = TokenKeys::new("not-the-secret-of-this-server", std::time::Duration::from_secs(60))
        .issue(AuthUser { user_id: 1, is_admin: true }, Utc::now())
        .unwrap()
        .token;
    let expired = app
        .token_keys()
        .await
        .issue(AuthUser { user_id: 1, is_admin: true }, Utc::now() - chrono::Duration::hours(1))
        .unwrap()
        .token;
    let routes = ["/api/orders", "/api/orders/1", "/api/notifications", "/api/products", "/api/users"];

    for route in routes {
        let missing = app.client.get(app.url(route)).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED, "{route} without a token");
        assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "missing_token");

        for (token, code) in
            [(&forged, "invalid_token"), (&expired, "token_expired"), (&"garbage".to_owned(), "invalid_token")]
        {
            let response = app.get(token, route).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{route} with {code}");
            assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], code, "{route}");
        }
    }
    let create = app.client.post(app.url("/api/orders")).json(&crate::helpers::order_body()).send().await.unwrap();
    assert_eq!(create.status(), StatusCode::UNAUTHORIZED);
    for (token, code) in [(&forged, "invalid_token"), (&expired, "token_expired")] {
        let create = app.create_order(token, &crate::helpers::order_body()).await;
        assert_eq!(create.status(), StatusCode::UNAUTHORIZED, "create with {code}");
        assert_eq!(create.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    assert_eq!(app.count("orders").await, 0);
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn a_login_with_a_control_character_in_the_email_is_a_clear_400() {
    let app = spawn_app().await;

    // PostgreSQL refuses NUL in text: unchecked, this reached the query and became a 500.
    let response = app.login("admin@example.com\0", "admin123").await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    assert_eq!(body["error"]["field"], "email", "{body}");
}
