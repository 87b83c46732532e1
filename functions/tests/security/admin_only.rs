//! Admin-only endpoints: users and dead letters answer 403 to anyone else, whatever the body.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_user_who_is_not_an_admin_gets_403_from_every_admin_endpoint() {
    let app = spawn_app().await;
    app.create_user("eve@example.com", "eve's own password", false).await;
    let eve = app.token_of("eve@example.com", "eve's own password").await;
    let users_before = app.count("users").await;

    let calls = [
        (Method::GET, "/api/users", None),
        (
            Method::POST,
            "/api/users",
            Some(json!({ "email": "mallory@example.com", "password": "mallory's password", "isAdmin": true })),
        ),
        (Method::PATCH, "/api/users/2", Some(json!({ "isAdmin": true }))),
        (Method::PATCH, "/api/users/1", Some(json!({ "password": "taken over, thanks" }))),
        (Method::GET, "/api/dead-letters", None),
        (Method::POST, "/api/dead-letters/replay", Some(json!({ "queue": "order-created-event", "all": true }))),
    ];

    for (method, path, body) in calls {
        let mut request = app.client.request(method.clone(), app.url(path)).bearer_auth(&eve);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "forbidden", "{method} {path}");
    }
    assert_eq!(app.count("users").await, users_before);
    let eve_is_admin: bool =
        sqlx::query_scalar("select is_admin from users where id = 2").fetch_one(&app.pool).await.unwrap();
    assert!(!eve_is_admin);
    assert_eq!(app.login("admin@example.com", "admin123").await.status(), StatusCode::OK, "the admin's password");
}
