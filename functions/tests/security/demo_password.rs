//! The seeded demo password (admin@example.com / admin123) works only while every listener of
//! the process is on loopback, as RabbitMQ's `guest`: a process listening on any other address
//! refuses it for login, for tokens obtained with it, and for the board, and logs how to set a
//! real password.

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{TestApp, spawn_app, spawn_app_with},
    support::{
        error_code, free_port, get_status, log_line_of_orderflow, login_over_loopback, loopback_url, patch_user,
    },
};

/// A login with the demo password, over loopback whatever the app listens on.
async fn demo_login(app: &TestApp) -> reqwest::Response {
    login_over_loopback(app, "admin@example.com", "admin123").await
}

/// The board's status for the demo credentials.
async fn demo_board_status(app: &TestApp) -> StatusCode {
    let board = app.board_address.as_deref().expect("the app serves a board");
    let url = loopback_url(board, "/api/v1/queues");
    app.client.get(url).basic_auth("admin@example.com", Some("admin123")).send().await.unwrap().status()
}

#[tokio::test]
async fn the_demo_password_works_while_every_listener_is_on_loopback() {
    let app = spawn_app().await;

    assert_eq!(demo_login(&app).await.status(), StatusCode::OK);
    assert_eq!(demo_board_status(&app).await, StatusCode::OK);
}

#[tokio::test]
async fn a_process_listening_beyond_loopback_refuses_the_demo_password_for_login_and_the_board() {
    for (http, board) in [("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "0.0.0.0:0")] {
        let app = spawn_app_with(|c| {
            c.http_addr = http.parse().unwrap();
            c.board_addr = board.parse().unwrap();
        })
        .await;

        let login = demo_login(&app).await;

        assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "HTTP on {http}, board on {board}");
        assert_eq!(error_code(login).await, "demo_password_refused");
        assert_eq!(demo_board_status(&app).await, StatusCode::UNAUTHORIZED, "HTTP on {http}, board on {board}");
    }
}

#[tokio::test]
async fn a_token_got_with_the_demo_password_on_loopback_is_refused_beyond_loopback() {
    let local = spawn_app().await;
    let token = local.admin_token().await;
    let exposed = spawn_app_with(|c| {
        c.database_url.clone_from(&local.config.database_url);
        c.http_addr = "0.0.0.0:0".parse().unwrap();
    })
    .await;

    let response =
        exposed.client.get(loopback_url(&exposed.address, "/api/orders")).bearer_auth(&token).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "demo_password_refused");
    assert_eq!(get_status(&local, &token, "/api/orders").await.0, StatusCode::OK, "still fine on loopback");
}

#[tokio::test]
async fn a_process_listening_beyond_loopback_logs_how_to_set_a_real_password() {
    let app = spawn_app().await;
    let (http, board) = (format!("0.0.0.0:{}", free_port()), format!("127.0.0.1:{}", free_port()));

    let line = log_line_of_orderflow(&app, &[("HTTP_ADDR", &http), ("BOARD_ADDR", &board)], "demo password").await;

    assert!(line.contains("admin@example.com"), "{line}");
    assert!(line.contains("ADMIN_PASSWORD") && line.contains("orderflow users set-password"), "{line}");
    assert!(line.contains(&http), "the line names the address: {line}");
}

#[tokio::test]
async fn a_real_password_replaces_the_demo_one_everywhere() {
    let local = spawn_app().await;
    assert_eq!(patch_user(&local, 1, &json!({ "password": "a real admin password" })).await, StatusCode::OK);
    let exposed = spawn_app_with(|c| {
        c.database_url.clone_from(&local.config.database_url);
        c.http_addr = "0.0.0.0:0".parse().unwrap();
    })
    .await;

    let old = local.login("admin@example.com", "admin123").await;
    let new_here = local.login("admin@example.com", "a real admin password").await;
    let new_there = login_over_loopback(&exposed, "admin@example.com", "a real admin password").await;

    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(old).await, "invalid_credentials");
    assert_eq!(new_here.status(), StatusCode::OK);
    assert_eq!(new_there.status(), StatusCode::OK);
}
