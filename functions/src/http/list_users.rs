//! `GET /api/users`: the users (never their password hashes), for admins.

use axum::{Extension, Json, extract::State};
use shared::db::users::{self, User};

use super::{ApiError, AppState, AuthUser, ErrorBody};

/// Lists users.
#[utoipa::path(
    get, path = "/api/users", tag = "users",
    responses(
        (status = 200, description = "All users", body = [User]),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 403 for a caller who is not an admin, 503 when the database is down.
pub async fn list_users(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
) -> Result<Json<Vec<User>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(users::list_users(&state.pool).await?))
}
