//! The board's basic authentication: no, wrong and non-admin credentials are refused alike, an
//! unknown or non-admin e-mail goes through the same (decoy) password check and the same
//! throttle as an admin's, and that throttle is the one login uses.

use reqwest::{Response, StatusCode};

use crate::{
    helpers::{TestApp, spawn_app_with},
    throttle::{assert_throttled, client_from},
};

/// A non-admin user whose password is `admin123` (the admin's hash, copied).
async fn add_non_admin(app: &TestApp, email: &str) {
    sqlx::query(
        "insert into users (email, name, password_hash, is_admin)
         select $1, 'Not an admin', password_hash, false from users where email = 'admin@example.com'",
    )
    .bind(email)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// `GET /api/v1/queues` on the board from 127.0.0.2, with these credentials if any.
async fn board_queues(app: &TestApp, credentials: Option<(&str, &str)>) -> Response {
    let url = format!("{}/api/v1/queues", app.board_address.as_ref().unwrap());
    let request = client_from(2).get(url);
    let request = match credentials {
        Some((email, password)) => request.basic_auth(email, Some(password)),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_board_refuses_no_wrong_and_non_admin_credentials() {
    let app = spawn_app_with(|_| {}).await;
    add_non_admin(&app, "user@example.com").await;

    for credentials in [
        None,
        Some(("admin@example.com", "wrong")),
        Some(("user@example.com", "admin123")),
        Some(("nobody@example.com", "admin123")),
    ] {
        let response = board_queues(&app, credentials).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{credentials:?}");
        assert!(response.headers().contains_key("www-authenticate"), "{credentials:?}");
    }
    assert_eq!(board_queues(&app, Some(("admin@example.com", "admin123"))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_non_admin_emails_are_checked_and_throttled_like_an_admins() {
    let app = spawn_app_with(|c| c.login_failures_per_account = 2).await;
    add_non_admin(&app, "user@example.com").await;

    for email in ["admin@example.com", "user@example.com", "nobody@example.com"] {
        for _ in 0..2 {
            let response = board_queues(&app, Some((email, "wrong"))).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
        }

        // Had the board returned early for this e-mail, nothing would have counted.
        assert_throttled(board_queues(&app, Some((email, "admin123"))).await).await;
    }
}

#[tokio::test]
async fn failed_logins_and_failed_board_attempts_share_one_throttle() {
    let app = spawn_app_with(|c| c.login_failures_per_account = 2).await;
    for _ in 0..2 {
        assert_eq!(app.login("admin@example.com", "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }

    assert_throttled(board_queues(&app, Some(("admin@example.com", "admin123"))).await).await;
}
