//! Managing users: `orderflow users …` (passwords from standard input, never argv) and, for
//! admins, `POST /api/users` and `PATCH /api/users/{id}`.

use clap::Parser;
use orderflow::cli::Cli;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::spawn_app,
    support::{error_code, orderflow_cli},
};

#[tokio::test]
async fn users_are_added_changed_disabled_and_listed_from_the_command_line() {
    let app = spawn_app().await;

    let (added, stdout, stderr) =
        orderflow_cli(&app, &["users", "add", "--email", "ada@example.com", "--name", "Ada"], "ada's first password\n")
            .await;
    assert!(added, "{stdout}{stderr}");
    assert!(stdout.contains("created user 2 ada@example.com"), "{stdout}");
    assert_eq!(app.login("ada@example.com", "ada's first password").await.status(), StatusCode::OK);

    let (set, stdout, stderr) =
        orderflow_cli(&app, &["users", "set-password", "--email", "ADA@example.com"], "ada's second password\n").await;
    assert!(set, "{stdout}{stderr}");
    assert_eq!(app.login("ada@example.com", "ada's first password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("ada@example.com", "ada's second password").await.status(), StatusCode::OK);

    let (disabled, stdout, stderr) = orderflow_cli(&app, &["users", "disable", "--email", "ada@example.com"], "").await;
    assert!(disabled, "{stdout}{stderr}");
    let refused = app.login("ada@example.com", "ada's second password").await;
    assert_eq!(error_code(refused).await, "account_disabled");

    let (listed, stdout, _) = orderflow_cli(&app, &["users", "list"], "").await;
    assert!(listed);
    let ada = stdout.lines().find(|l| l.contains("ada@example.com")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(ada.contains("Ada") && ada.trim_end().ends_with("yes"), "disabled: {ada}");
    assert!(stdout.contains("2 user(s)"), "{stdout}");

    let (enabled, _, _) = orderflow_cli(&app, &["users", "enable", "--email", "ada@example.com"], "").await;
    assert!(enabled);
    assert_eq!(app.login("ada@example.com", "ada's second password").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_command_line_refuses_bad_passwords_and_taken_or_unknown_emails() {
    let app = spawn_app().await;

    let cases: [(&[&str], &str, &str); 4] = [
        (&["users", "add", "--email", "ada@example.com"], "short\n", "at least 8 characters"),
        (&["users", "add", "--email", "ada@example.com"], "admin123\n", "demo password"),
        (&["users", "add", "--email", "ADMIN@example.com"], "a good password\n", "exists"),
        (&["users", "set-password", "--email", "nobody@example.com"], "a good password\n", "no user has e-mail"),
    ];

    for (args, stdin, expected) in cases {
        let (ok, stdout, stderr) = orderflow_cli(&app, args, stdin).await;
        assert!(!ok, "{args:?} succeeded: {stdout}");
        assert!(format!("{stdout}{stderr}").contains(expected), "{args:?}: {stdout}{stderr}");
    }
    assert_eq!(app.count("users").await, 1);
}

#[test]
fn no_users_command_takes_a_password_on_the_command_line() {
    for command in ["add", "set-password"] {
        let parsed = Cli::try_parse_from(["orderflow", "users", command, "--email", "a@b.c", "--password", "x"]);

        assert!(parsed.is_err(), "`users {command} --password` was accepted");
    }
}

#[tokio::test]
async fn admins_create_and_change_users_over_http() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let post = |body: Value| app.client.post(app.url("/api/users")).bearer_auth(&admin).json(&body).send();
    let patch = |id: i64, body: Value| {
        app.client.patch(app.url(&format!("/api/users/{id}"))).bearer_auth(&admin).json(&body).send()
    };

    let created = post(json!({ "email": "ada@example.com", "password": "ada's own password" })).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let ada: Value = created.json().await.unwrap();
    assert_eq!(
        (&ada["email"], &ada["name"], &ada["isAdmin"], &ada["disabled"]),
        (&json!("ada@example.com"), &json!("ada"), &json!(false), &json!(false))
    );
    assert!(!ada.to_string().contains("argon2") && ada.get("passwordHash").is_none(), "{ada}");
    let id = ada["id"].as_i64().unwrap();

    for (body, status, code) in [
        (json!({ "email": "Ada@Example.com", "password": "another password" }), StatusCode::CONFLICT, "email_taken"),
        (json!({ "email": "bob@example.com", "password": "short" }), StatusCode::BAD_REQUEST, "validation_failed"),
        (json!({ "email": "bob@example.com", "password": "admin123" }), StatusCode::BAD_REQUEST, "validation_failed"),
        (
            json!({ "email": "not an e-mail", "password": "a good password" }),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            json!({ "email": "bob@example.com", "password": "a good password", "admin": true }),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
    ] {
        let response = post(body.clone()).await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(error_code(response).await, code, "{body}");
    }

    let changed: Value =
        patch(id, json!({ "name": "Ada Lovelace", "isAdmin": true, "password": "ada's new password" }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!((&changed["name"], &changed["isAdmin"]), (&json!("Ada Lovelace"), &json!(true)));
    assert_eq!(app.login("ada@example.com", "ada's own password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("ada@example.com", "ada's new password").await.status(), StatusCode::OK);

    assert_eq!(patch(999, json!({ "name": "Nobody" })).await.unwrap().status(), StatusCode::NOT_FOUND);
    let own = patch(1, json!({ "isAdmin": false })).await.unwrap();
    assert_eq!(own.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(own).await, "own_account");
    let listed: Value = app.get(&admin, "/api/users").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}
