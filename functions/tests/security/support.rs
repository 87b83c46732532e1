//! What the security tests share: tokens forged by hand, the `orderflow` binary run as a
//! command or as a process whose log is read, and addresses that listen beyond loopback.

use std::{process::Stdio, time::Duration};

use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use shared::Config;
use sqlx::{Connection as _, PgConnection};

use crate::helpers::{TestApp, postgres_server};

/// The claims of an admin token for user 1 as orderflow issues them, valid for an hour.
pub fn admin_claims() -> Value {
    let now = Utc::now().timestamp();
    json!({ "sub": "1", "iss": "orderflow", "adm": true, "iat": now, "exp": now + 3600 })
}

/// `claims` signed with HS256 and `secret`.
pub fn sign(secret: &str, claims: &Value) -> String {
    sign_with(Algorithm::HS256, secret, claims)
}

/// `claims` signed with an HMAC `algorithm` and `secret`.
pub fn sign_with(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// `claims` in an unsigned token (`alg: none`, empty signature).
pub fn unsigned(claims: &Value) -> String {
    let encode = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.", encode(&json!({ "alg": "none", "typ": "JWT" })), encode(claims))
}

/// A token with its payload replaced by `claims`, keeping the original header and signature.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}

/// `GET path` with `token`; the status and the error code of the body, if any.
pub async fn get_status(app: &TestApp, token: &str, path: &str) -> (StatusCode, Option<String>) {
    let response = app.get(token, path).await;
    let status = response.status();
    let code = response.json::<Value>().await.ok().and_then(|body| body["error"]["code"].as_str().map(str::to_owned));
    (status, code)
}

/// `POST /api/auth/login` over loopback, also when the app listens on `0.0.0.0`.
pub async fn login_over_loopback(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let url = loopback_url(&app.address, "/api/auth/login");
    app.client.post(url).json(&json!({ "email": email, "password": password })).send().await.unwrap()
}

/// `PATCH /api/users/{id}` with `changes`, as the seeded admin (of an app on loopback).
pub async fn patch_user(app: &TestApp, id: i64, changes: &Value) -> StatusCode {
    let url = app.url(&format!("/api/users/{id}"));
    app.client.patch(url).bearer_auth(app.admin_token().await).json(changes).send().await.unwrap().status()
}

/// The error code of a response's JSON body.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}")).to_owned()
}

/// `orderflow <args>` against the app's database, with `stdin` as standard input; its exit
/// status, standard output and standard error.
pub async fn orderflow_cli(app: &TestApp, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(args)
        .env("DATABASE_URL", &app.config.database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the orderflow command did not finish")
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// Runs the `orderflow` binary with `env` (and the app's database and queues) until a line of its
/// log contains `wanted`, and returns that line; panics if it exits or says nothing like it in
/// 30 s. The process is killed afterwards.
pub async fn log_line_of_orderflow(app: &TestApp, env: &[(&str, &str)], wanted: &str) -> String {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .arg("api")
        .env("DATABASE_URL", &app.config.database_url)
        .env("AMQP_URL", &app.config.amqp_url)
        .env("QUEUE_PREFIX", &app.config.queue_prefix)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(wanted) {
                return Some(line);
            }
        }
        None
    })
    .await;
    let _ = child.kill().await;
    match found {
        Ok(Some(line)) => line,
        Ok(None) => panic!("orderflow exited without logging {wanted:?}"),
        Err(_) => panic!("orderflow did not log {wanted:?} within 30 s"),
    }
}

/// A free TCP port on every interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// The app's URL for `path` over loopback, also when it listens on `0.0.0.0`.
pub fn loopback_url(address: &str, path: &str) -> String {
    format!("{}{path}", address.replace("0.0.0.0", "127.0.0.1"))
}

/// Drops the database of `config`, for a test that made one without a [`TestApp`].
pub async fn drop_database(config: &Config) {
    let database = config.database_url.rsplit('/').next().unwrap();
    let mut conn = PgConnection::connect(&format!("{}/postgres", postgres_server())).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"drop database if exists "{database}" with (force)"#)))
        .execute(&mut conn)
        .await
        .unwrap();
}
