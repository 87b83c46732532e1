//! `PATCH /api/users/{id}`: an admin renames a user, sets their password, promotes or demotes
//! them, or disables or enables them. The change reaches the user's tokens on every replica
//! within a couple of seconds (see `accounts.rs`), at once on this one.

use axum::{Extension, Json, extract::State};
use serde::Deserialize;
use shared::{
    db::users::{self, User, UserChanges},
    domain::account,
};

use super::{ApiError, ApiJson, ApiPath, AppState, AuthUser, ErrorBody, create_user::invalid};
use crate::accounts::hash_password;

/// The `{id}` path segment.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The user id.
    #[param(minimum = -9223372036854775808_i64, maximum = 9223372036854775807_i64)]
    pub id: i64,
}

/// The changes; a field left out stays as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// A new display name: 1 to 200 characters, not blank, no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    /// A new password: 8 characters to 1024 bytes, not the published demo password.
    #[serde(default)]
    #[schema(min_length = 8, max_length = 1024)]
    password: Option<String>,
    /// Promote (true) or demote (false).
    #[serde(default)]
    is_admin: Option<bool>,
    /// Disable (true: no logins, tokens refused) or enable (false).
    #[serde(default)]
    disabled: Option<bool>,
}

/// Changes a user.
#[utoipa::path(
    patch, path = "/api/users/{id}", tag = "users",
    params(UserPath),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The user as changed", body = User),
        (status = 400, description = "`malformed_json`, `validation_failed` (with `field`) or `invalid_parameter`", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`own_account`: an admin may not demote or disable themselves", body = ErrorBody),
        (status = 413, description = "Body over MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 invalid body, 403 not an admin, 404 no such user, 409 the caller's own demotion or
/// disabling, 503 database down.
pub async fn update_user(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> Result<Json<User>, ApiError> {
    caller.require_admin()?;
    // Someone else has to do it, so that the last admin cannot lock everyone out by mistake.
    if path.id == caller.user_id && (request.is_admin == Some(false) || request.disabled == Some(true)) {
        return Err(ApiError::Conflict {
            code: "own_account",
            message: "an admin may not demote or disable themselves; ask another admin".into(),
        });
    }
    let name = request.name.as_deref().map(str::trim);
    if let Some(name) = name {
        account::check_name(name).map_err(|message| invalid("name", message))?;
    }
    let password_hash = match request.password {
        Some(password) => {
            account::check_new_password(&password).map_err(|message| invalid("password", message))?;
            Some(hash_password(password).await?)
        }
        None => None,
    };
    let changes = UserChanges {
        name,
        password_hash: password_hash.as_deref(),
        is_admin: request.is_admin,
        disabled: request.disabled,
    };
    let user = users::update_user(&state.pool, path.id, changes)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user has id {}", path.id)))?;
    state.accounts.forget(user.id);
    tracing::info!(
        user.id = user.id,
        user.is_admin = user.is_admin,
        user.disabled = user.disabled,
        password_changed = password_hash.is_some(),
        by.user_id = caller.user_id,
        "user updated"
    );
    Ok(Json(user))
}
