//! The board's HTTP basic authentication: an admin's e-mail and password, checked against the
//! argon2 hash in `users`, and remembered for a while.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use argon2::{Argon2, PasswordVerifier};
use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine;
use shared::db::users;
use sqlx::PgPool;

/// Checks board credentials against the admins in the database. argon2 is deliberately slow and
/// the UI makes many requests, so a verified `Authorization` value is remembered for a while.
#[derive(Clone)]
pub struct BoardAuth {
    pool: PgPool,
    verified: Arc<Mutex<HashMap<String, Instant>>>,
}

/// How long verified credentials are trusted without checking the hash again.
const REMEMBER: Duration = Duration::from_secs(300);
/// Most remembered credentials.
const REMEMBER_MAX: usize = 64;

impl BoardAuth {
    /// Checks against the admins in `pool`.
    pub fn new(pool: PgPool) -> Self {
        BoardAuth { pool, verified: Arc::new(Mutex::new(HashMap::new())) }
    }

    fn remembered(&self, header: &str) -> bool {
        let mut verified = self.verified.lock().expect("board auth lock poisoned");
        verified.retain(|_, at| at.elapsed() < REMEMBER);
        verified.contains_key(header)
    }

    fn remember(&self, header: &str) {
        let mut verified = self.verified.lock().expect("board auth lock poisoned");
        if verified.len() >= REMEMBER_MAX {
            verified.clear();
        }
        verified.insert(header.to_owned(), Instant::now());
    }

    async fn check(&self, header: &str) -> bool {
        if self.remembered(header) {
            return true;
        }
        let Some(credentials) = header
            .strip_prefix("Basic ")
            .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
        else {
            return false;
        };
        let Some((email, password)) = credentials.split_once(':') else { return false };
        let Ok(Some(hash)) = users::admin_password_hash(&self.pool, email).await else { return false };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
        })
        .await
        .unwrap_or(false);
        if ok {
            self.remember(header);
        }
        ok
    }
}

/// Lets a request through if it carries an admin's credentials; answers 401 otherwise.
pub async fn require_admin(State(auth): State<BoardAuth>, request: Request, next: Next) -> Response {
    let authorized = match request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(header) => auth.check(header).await,
        None => false,
    };
    if authorized {
        return next.run(request).await;
    }
    let mut response = (StatusCode::UNAUTHORIZED, "the board needs an admin's e-mail and password").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="orderflow board", charset="UTF-8""#),
    );
    response
}
