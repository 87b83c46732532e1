//! `POST /api/auth/login`: trades the e-mail and password of a user for a bearer token. The
//! password is checked through the [`PasswordGate`](crate::credentials::PasswordGate): throttled
//! per account and client address, on a bounded pool. A disabled user, or the demo password on a
//! process that listens beyond loopback, gets no token.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::db::users;

use super::{ApiError, ApiJson, AppState, AuthUser, ClientAddress, ErrorBody};
use crate::accounts;

/// A login attempt.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    /// Not blank, no control characters.
    #[schema(
        example = "admin@example.com",
        min_length = 1,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    email: String,
    /// Not empty.
    #[schema(example = "admin123", min_length = 1)]
    password: String,
}

/// A token and when it expires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Send it as `Authorization: Bearer <token>`.
    token: String,
    expires_at: DateTime<Utc>,
}

/// Logs a user in.
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed body or missing field", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: wrong e-mail or password; `account_disabled`; \
            `demo_password_refused`: the demo password on a process listening beyond loopback", body = ErrorBody),
        (status = 413, description = "Body over MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: too many failed logins for the account or the client \
                                      address, or too many logins at once; retry after `Retry-After` seconds",
         body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    )
)]
///
/// # Errors
/// 400 for a malformed body, 401 `invalid_credentials` for a wrong e-mail or password, and
/// (only once the password is right, so they tell a guesser nothing) 401 `account_disabled` or
/// `demo_password_refused`; 429 `too_many_requests` when throttled or when every password check
/// is taken.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if request.email.trim().is_empty() {
        return Err(ApiError::Validation { field: Some("email".into()), message: "must not be empty".into() });
    }
    // PostgreSQL cannot hold NUL in text, and no e-mail has control characters: refuse them
    // here rather than let the lookup fail.
    if request.email.chars().any(char::is_control) {
        return Err(ApiError::Validation {
            field: Some("email".into()),
            message: "must not contain control characters".into(),
        });
    }
    if request.password.is_empty() {
        return Err(ApiError::Validation { field: Some("password".into()), message: "must not be empty".into() });
    }
    // Admitted before the lookup: a refused attempt costs neither the database nor argon2.
    let admitted = state.passwords.admit(&request.email, client)?;
    let credentials = users::find_credentials_by_email(&state.pool, request.email.trim()).await?;
    let (user, hash) = match credentials {
        Some(c) => {
            (Some((AuthUser { user_id: c.user_id, is_admin: c.is_admin }, c.account_state())), Some(c.password_hash))
        }
        None => (None, None),
    };
    // A hash made with older parameters is made again once the password is known to be right.
    let outdated = hash.as_deref().filter(|hash| !accounts::hashed_with_current_parameters(hash)).map(str::to_owned);
    let password = outdated.as_ref().map(|_| request.password.clone());
    let password_ok = admitted.verify(request.password, hash).await;
    let (Some((user, account)), true) = (user, password_ok) else {
        return Err(ApiError::unauthorized("invalid_credentials", "wrong e-mail or password"));
    };
    if let Err(refusal) = state.accounts.admit(account) {
        tracing::info!(user.id = user.user_id, reason = %refusal, "login refused");
        return Err(refusal);
    }
    if let (Some(old), Some(password)) = (outdated, password) {
        tokio::spawn(rehash(state.pool.clone(), user.user_id, old, password));
    }
    let issued = state.tokens.issue(user, Utc::now())?;
    tracing::info!(user.id = user.user_id, "user logged in");
    Ok(Json(LoginResponse { token: issued.token, expires_at: issued.expires_at }))
}

/// Hashes `password` again with today's parameters and stores it in place of `old`, so that the
/// user's next check takes what every other check takes (7 MiB, the decoy's time) rather than
/// what argon2's defaults took (19 MiB, longer: an e-mail with such a hash could be told from an
/// unknown one by the time a wrong password takes).
async fn rehash(pool: sqlx::PgPool, id: i64, old: String, password: String) {
    let replaced = async {
        let new = accounts::hash_password(password).await?;
        anyhow::Ok(users::replace_password_hash(&pool, id, &old, &new).await?)
    };
    match replaced.await {
        Ok(true) => tracing::info!(user.id = id, "password hashed again with today's argon2 parameters"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(user.id = id, error = %e, "could not hash a password again; it is tried at the next login");
        }
    }
}
