//! No published secret is ever accepted: with `JWT_SECRET` unset, tokens are signed with a
//! random secret kept in the database (shared by every process on it), and a `JWT_SECRET` that
//! was ever published stops start-up.

use orderflow::app::{Application, Externals, Role};
use reqwest::StatusCode;
use shared::config::PUBLISHED_JWT_SECRETS;

use crate::{
    helpers::{spawn_app, spawn_app_with, test_config},
    support::{admin_claims, error_code, sign},
};

#[tokio::test]
async fn with_jwt_secret_unset_an_admin_token_signed_with_a_published_secret_is_refused() {
    let app = spawn_app().await;
    assert!(app.config.jwt_secret.is_none());

    for secret in PUBLISHED_JWT_SECRETS {
        let forged = sign(secret, &admin_claims());

        let response = app.client.get(app.url("/api/dead-letters")).bearer_auth(&forged).send().await.unwrap();

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "a token signed with {secret:?}");
        assert_eq!(error_code(response).await, "invalid_token");
    }
}

#[tokio::test]
async fn the_generated_secret_is_random_and_kept_in_the_database() {
    let first = spawn_app().await;
    let second = spawn_app().await;

    let secret_of = |app: &crate::helpers::TestApp| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("select value from settings where name = 'jwt_secret'")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (a, b) = (secret_of(&first).await, secret_of(&second).await);

    assert_ne!(a, b, "two databases got the same secret");
    assert!(a.len() >= 40, "a short secret: {} characters", a.len());
    assert!(!PUBLISHED_JWT_SECRETS.contains(&a.as_str()));
}

#[tokio::test]
async fn two_apps_on_one_database_accept_each_others_tokens() {
    let first = spawn_app().await;
    let second = spawn_app_with(|c| c.database_url.clone_from(&first.config.database_url)).await;

    let from_first = first.admin_token().await;
    let from_second = second.admin_token().await;

    assert_eq!(second.get(&from_first, "/api/orders").await.status(), StatusCode::OK);
    assert_eq!(first.get(&from_second, "/api/orders").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_published_jwt_secret_is_refused_on_the_command_line() {
    for secret in PUBLISHED_JWT_SECRETS {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .arg("migrate")
            .env("JWT_SECRET", secret)
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/never-reached")
            .output()
            .await
            .unwrap();

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "orderflow started with JWT_SECRET={secret}");
        assert!(stderr.contains("JWT_SECRET") && stderr.contains("published"), "{stderr}");
    }
}

#[tokio::test]
async fn a_published_jwt_secret_set_in_code_stops_start_up() {
    let mut config = test_config();
    // `Secret`'s own parser only checks the length; the command line's also checks publication.
    config.jwt_secret = Some(PUBLISHED_JWT_SECRETS[0].parse().unwrap());

    let started = Application::build_with(config.clone(), Role::Api, Externals::from_config(&config)).await;

    let error = format!("{:#}", started.err().expect("orderflow started with a published secret"));
    assert!(error.contains("published"), "{error}");
    crate::support::drop_database(&config).await;
}
