//! Failed logins are throttled per account and per client address: past the limit, 429
//! `too_many_requests` with Retry-After, and after waiting that long a login works again.
//! Clients on 127.0.0.2 and 127.0.0.3 stand for other machines (Linux routes all of 127/8 to
//! the loopback interface).

use std::{net::IpAddr, time::Duration};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// A client whose requests come from `127.0.0.<last>`.
pub fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, last])).build().unwrap()
}

/// `POST /api/auth/login` from `client`.
async fn login(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> Response {
    client.post(app.url("/api/auth/login")).json(&json!({ "email": email, "password": password })).send().await.unwrap()
}

/// Asserts a 429 `too_many_requests` and returns its Retry-After.
pub async fn assert_throttled(response: Response) -> Duration {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response.headers().get("retry-after").expect("a 429 without Retry-After");
    let secs: u64 = retry_after.to_str().unwrap().parse().expect("Retry-After is not whole seconds");
    assert!(secs >= 1, "Retry-After: {secs}");
    if response.headers().get("content-type").is_some_and(|t| t.to_str().unwrap().contains("json")) {
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    }
    Duration::from_secs(secs)
}

#[tokio::test]
async fn failed_logins_on_one_account_are_throttled_until_retry_after_has_passed() {
    let app = spawn_app_with(|c| {
        c.login_failures_per_account = 2;
        c.login_throttle_window_secs = 2;
    })
    .await;
    let client = client_from(2);
    for _ in 0..2 {
        assert_eq!(login(&app, &client, "admin@example.com", "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }

    // Even the right password, from another address, in another case: the account is throttled.
    let wait = assert_throttled(login(&app, &client_from(3), "ADMIN@example.com", "admin123").await).await;
    assert_eq!(login(&app, &client, "nobody@example.com", "wrong").await.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(wait).await;

    assert_eq!(login(&app, &client, "admin@example.com", "admin123").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn failed_logins_from_one_address_are_throttled_for_every_account_there_only() {
    let app = spawn_app_with(|c| {
        c.login_failures_per_address = 3;
        c.login_throttle_window_secs = 3;
    })
    .await;
    let flooder = client_from(2);
    for n in 0..3 {
        let response = login(&app, &flooder, &format!("guess-{n}@example.com"), "wrong").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    let wait = assert_throttled(login(&app, &flooder, "admin@example.com", "admin123").await).await;
    assert_eq!(login(&app, &client_from(3), "admin@example.com", "admin123").await.status(), StatusCode::OK);
    tokio::time::sleep(wait).await;

    assert_eq!(login(&app, &flooder, "admin@example.com", "admin123").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn successful_logins_do_not_count_against_the_throttle() {
    let app = spawn_app_with(|c| {
        c.login_failures_per_account = 1;
        c.login_failures_per_address = 1;
    })
    .await;

    for _ in 0..5 {
        assert_eq!(app.login("admin@example.com", "admin123").await.status(), StatusCode::OK);
    }
}
