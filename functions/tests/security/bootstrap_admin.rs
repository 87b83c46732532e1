//! `ADMIN_EMAIL` / `ADMIN_PASSWORD` bootstrap the first admin at start-up: created, or given the
//! password, the admin flag and re-enabled; it replaces the demo password and works on a
//! process listening beyond loopback.

use std::time::Duration;

use clap::Parser;
use orderflow::cli::Cli;
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{TestApp, spawn_app, spawn_app_with},
    support::{error_code, get_status, login_over_loopback, loopback_url, patch_user},
};

async fn login_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    login_over_loopback(app, email, password).await.status()
}

#[tokio::test]
async fn a_new_bootstrap_admin_logs_in_beyond_loopback_and_the_demo_password_stays_refused() {
    let app = spawn_app_with(|c| {
        c.http_addr = "0.0.0.0:0".parse().unwrap();
        c.admin_email = "ops@example.com".into();
        c.admin_password = Some("the ops password".parse().unwrap());
    })
    .await;

    assert_eq!(login_status(&app, "ops@example.com", "the ops password").await, StatusCode::OK);
    assert_eq!(login_status(&app, "admin@example.com", "admin123").await, StatusCode::UNAUTHORIZED);
    let token: serde_json::Value =
        login_over_loopback(&app, "ops@example.com", "the ops password").await.json().await.unwrap();
    let users = app
        .client
        .get(loopback_url(&app.address, "/api/users"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), StatusCode::OK, "the bootstrap admin is an admin");
}

#[tokio::test]
async fn admin_password_for_the_seeded_admin_replaces_the_demo_password() {
    let app = spawn_app_with(|c| c.admin_password = Some("the replacement password".parse().unwrap())).await;

    let demo = app.login("admin@example.com", "admin123").await;

    assert_eq!(demo.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(demo).await, "invalid_credentials");
    assert_eq!(login_status(&app, "admin@example.com", "the replacement password").await, StatusCode::OK);
    let demo_flag: bool =
        sqlx::query_scalar("select password_is_demo from users where id = 1").fetch_one(&app.pool).await.unwrap();
    assert!(!demo_flag);
}

#[tokio::test]
async fn a_disabled_user_named_by_admin_email_becomes_an_enabled_admin_at_the_next_start() {
    let first = spawn_app().await;
    let eve = first.create_user("eve@example.com", "eve's old password", false).await;
    assert_eq!(patch_user(&first, eve, &json!({ "disabled": true })).await, StatusCode::OK);

    let restarted = spawn_app_with(|c| {
        c.database_url.clone_from(&first.config.database_url);
        c.admin_email = "EVE@example.com".into();
        c.admin_password = Some("eve's new admin password".parse().unwrap());
    })
    .await;

    let token = restarted.token_of("eve@example.com", "eve's new admin password").await;
    assert_eq!(get_status(&restarted, &token, "/api/users").await.0, StatusCode::OK);
    assert_eq!(login_status(&restarted, "eve@example.com", "eve's old password").await, StatusCode::UNAUTHORIZED);
    assert_eq!(restarted.count("users").await, 2, "updated, not duplicated");
}

#[test]
fn the_demo_password_or_a_short_one_cannot_be_the_admin_password() {
    for password in ["admin123", "short"] {
        let parsed = Cli::try_parse_from(["orderflow", "--admin-password", password]);

        assert!(parsed.is_err(), "ADMIN_PASSWORD={password} was accepted");
    }
    assert!(Cli::try_parse_from(["orderflow", "--admin-password", "a proper password"]).is_ok());
}

async fn password_hash(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("select password_hash from users where email = $1")
        .bind(email)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

const CURRENT_PARAMETERS: &str = "$argon2id$v=19$m=7168,t=5,p=1$";

/// Stores `password` for `email` hashed as orderflow did before 2026-12 (argon2's defaults, 19
/// MiB); the hash.
async fn hash_with_argon2s_defaults(app: &TestApp, email: &str, password: &str) -> String {
    use argon2::{Argon2, PasswordHasher};
    let old = Argon2::default().hash_password(password.as_bytes()).unwrap().to_string();
    sqlx::query("update users set password_hash = $1 where email = $2")
        .bind(&old)
        .bind(email)
        .execute(&app.pool)
        .await
        .unwrap();
    old
}

#[tokio::test]
async fn a_bootstrap_admin_hashed_with_argon2s_defaults_is_hashed_again_with_todays_parameters_once() {
    let with_admin = |database_url: Option<String>| {
        move |c: &mut shared::Config| {
            if let Some(url) = &database_url {
                c.database_url.clone_from(url);
            }
            c.admin_email = "ops@example.com".into();
            c.admin_password = Some("the ops password".parse().unwrap());
        }
    };
    let first = spawn_app_with(with_admin(None)).await;
    assert!(password_hash(&first, "ops@example.com").await.starts_with(CURRENT_PARAMETERS));
    let old = hash_with_argon2s_defaults(&first, "ops@example.com", "the ops password").await;

    let second = spawn_app_with(with_admin(Some(first.config.database_url.clone()))).await;
    let rehashed = password_hash(&second, "ops@example.com").await;
    let third = spawn_app_with(with_admin(Some(first.config.database_url.clone()))).await;

    assert!(rehashed.starts_with(CURRENT_PARAMETERS), "{rehashed}");
    assert_ne!(rehashed, old);
    assert_eq!(password_hash(&third, "ops@example.com").await, rehashed, "a current hash is kept");
    assert_eq!(login_status(&third, "ops@example.com", "the ops password").await, StatusCode::OK);
}

#[tokio::test]
async fn the_seeded_demo_password_is_hashed_with_todays_parameters() {
    let app = spawn_app().await;

    assert!(password_hash(&app, "admin@example.com").await.starts_with(CURRENT_PARAMETERS));
    assert_eq!(login_status(&app, "admin@example.com", "admin123").await, StatusCode::OK);
}

#[tokio::test]
async fn a_users_hash_made_with_argon2s_defaults_is_made_again_at_their_next_login() {
    let app = spawn_app().await;
    app.create_user("ada@example.com", "ada's long password", false).await;
    let old = hash_with_argon2s_defaults(&app, "ada@example.com", "ada's long password").await;

    assert_eq!(login_status(&app, "ada@example.com", "a wrong password").await, StatusCode::UNAUTHORIZED);
    assert_eq!(password_hash(&app, "ada@example.com").await, old, "not on a failed login");
    assert_eq!(login_status(&app, "ada@example.com", "ada's long password").await, StatusCode::OK);

    let rehashed = crate::helpers::eventually("the hash made again", Duration::from_secs(10), || async {
        Some(password_hash(&app, "ada@example.com").await).filter(|hash| hash.starts_with(CURRENT_PARAMETERS))
    })
    .await;
    assert_ne!(rehashed, old);
    assert_eq!(login_status(&app, "ada@example.com", "ada's long password").await, StatusCode::OK);
}
