//! `GET /api/users`: the users (never their password hashes).

use axum::{Json, extract::State};
use shared::db::users::{self, User};

use super::{ApiError, AppState};

/// Lists users.
///
/// # Errors
/// 503 when the database is down.
pub async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(users::list_users(&state.pool).await?))
}
