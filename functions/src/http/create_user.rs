//! `POST /api/users`: an admin creates a user who can log in (the password stored as an argon2
//! hash, as `orderflow users add` does).

use axum::{
    Extension, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared::{
    db::{
        self,
        users::{self, NewUser, User, constraints},
    },
    domain::account,
};

use super::{ApiError, ApiJson, AppState, AuthUser, ErrorBody};
use crate::accounts::hash_password;

/// The user to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login e-mail, unique regardless of case: `name@domain` with one `@`, no spaces or control
    /// characters (spaces at either end are trimmed), at most 254 bytes.
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = r"^\s*[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@\x00-\x1f\x7f-\x9f]+\s*$"
    )]
    email: String,
    /// Display name, 1 to 200 characters, not blank, no control characters; default (absent or
    /// null): the part of the e-mail before `@`.
    #[serde(default)]
    #[schema(
        example = "Ada",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    /// 8 characters to 1024 bytes; not the published demo password.
    #[schema(example = "correct horse battery staple", min_length = 8, max_length = 1024)]
    password: String,
    /// Whether the user is an admin (default false).
    #[serde(default)]
    is_admin: bool,
}

/// Creates a user.
#[utoipa::path(
    post, path = "/api/users", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "`malformed_json` or `validation_failed` (with `field`)", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 409, description = "`email_taken`: another user has this e-mail", body = ErrorBody),
        (status = 413, description = "Body over MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 invalid body, 403 not an admin, 409 e-mail taken, 503 database down.
pub async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let email = request.email.trim();
    account::check_email(email).map_err(|message| invalid("email", message))?;
    let name = request.name.as_deref().map_or_else(|| account::default_name(email), str::trim);
    account::check_name(name).map_err(|message| invalid("name", message))?;
    account::check_new_password(&request.password).map_err(|message| invalid("password", message))?;
    let password_hash = hash_password(request.password).await?;
    let user = NewUser { email, name, password_hash: &password_hash, is_admin: request.is_admin };
    match users::insert_user(&state.pool, user).await {
        Ok(user) => {
            tracing::info!(
                user.id = user.id,
                user.is_admin = user.is_admin,
                by.user_id = caller.user_id,
                "user created"
            );
            Ok((StatusCode::CREATED, Json(user)).into_response())
        }
        Err(e) if db::violated_constraint(&e).is_some_and(|c| constraints::EMAIL_TAKEN.contains(&c)) => {
            Err(ApiError::Conflict { code: "email_taken", message: format!("a user with e-mail {email} exists") })
        }
        Err(e) => Err(e.into()),
    }
}

/// A 400 naming the field at fault.
pub(super) fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Validation { field: Some(field.to_owned()), message }
}
