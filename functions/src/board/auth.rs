//! The board's HTTP basic authentication: an admin's e-mail and password, checked against the
//! argon2 hash in `users` through the API's password gate (one bounded pool, one throttle), and
//! remembered for a while.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine;
use shared::db::users;
use sqlx::PgPool;

use crate::credentials::{self, PasswordGate, Refused};

/// Checks board credentials against the admins in the database. argon2 is deliberately slow and
/// the UI makes many requests, so a verified `Authorization` value is remembered for a moment.
/// An unknown, disabled or non-admin e-mail (or the demo password where it is refused) is
/// checked against the decoy hash, so the answer's timing and
/// throttling say nothing about which e-mails are admins.
#[derive(Clone)]
pub struct BoardAuth {
    pool: PgPool,
    passwords: PasswordGate,
    demo_password_allowed: bool,
    verified: Arc<Mutex<HashMap<String, Instant>>>,
}

/// How long verified credentials are trusted without checking the hash again: a few seconds, so
/// that a disabled or demoted admin loses the board as quickly as their API tokens.
const REMEMBER: Duration = Duration::from_secs(5);
/// Most remembered credentials.
const REMEMBER_MAX: usize = 64;

impl BoardAuth {
    /// Checks against the enabled admins in `pool`, through `passwords`; the demo password
    /// counts only if `demo_password_allowed`.
    pub fn new(pool: PgPool, passwords: PasswordGate, demo_password_allowed: bool) -> Self {
        BoardAuth { pool, passwords, demo_password_allowed, verified: Arc::new(Mutex::new(HashMap::new())) }
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

    async fn check(&self, header: &str, client: std::net::IpAddr) -> Result<bool, Refused> {
        if self.remembered(header) {
            return Ok(true);
        }
        let Some(credentials) = header
            .strip_prefix("Basic ")
            .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
        else {
            return Ok(false);
        };
        let Some((email, password)) = credentials.split_once(':') else { return Ok(false) };
        let admitted = self.passwords.admit(email, client)?;
        let hash = users::admin_password_hash(&self.pool, email, self.demo_password_allowed).await;
        // No early return: an unknown e-mail, a non-admin and an unreachable database all check
        // the decoy hash.
        let ok = admitted.verify(password.to_owned(), hash.ok().flatten()).await;
        if ok {
            self.remember(header);
        }
        Ok(ok)
    }
}

/// Lets a request through if it carries an admin's credentials; answers 401 otherwise, and 429
/// while the throttle or the password pool refuses the attempt.
pub async fn require_admin(State(auth): State<BoardAuth>, request: Request, next: Next) -> Response {
    let client = credentials::client_address(request.extensions());
    let authorized = match request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(header) => auth.check(header, client).await,
        None => Ok(false),
    };
    match authorized {
        Ok(true) => return next.run(request).await,
        Ok(false) => {}
        Err(refused) => {
            let secs = refused.retry_after_secs();
            let message = format!("too many attempts; retry in {secs} s");
            let mut response = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return response;
        }
    }
    let mut response = (StatusCode::UNAUTHORIZED, "the board needs an admin's e-mail and password").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="orderflow board", charset="UTF-8""#),
    );
    response
}
