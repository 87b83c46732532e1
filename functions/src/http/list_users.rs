//! `GET /api/users`: the users (never their password hashes).

use axum::{Json, extract::State};
use shared::db::users::{self, User};

use super::{ApiError, AppState, ErrorBody};

/// Lists users.
#[utoipa::path(
    get, path = "/api/users", tag = "catalogue",
    responses(
        (status = 200, description = "All users", body = [User]),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 503 when the database is down.
pub async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(users::list_users(&state.pool).await?))
}
