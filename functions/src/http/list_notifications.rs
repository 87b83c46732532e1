//! `GET /api/notifications?orderId=&type=`: what the completion and expiry functions recorded.

use axum::{Json, extract::State};
use serde::Deserialize;
use shared::db::notifications::{self, Notification, NotificationType};

use super::{ApiError, ApiQuery, AppState};

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListNotificationsQuery {
    #[serde(default)]
    order_id: Option<i64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Lists notifications, oldest first (at most 1000).
///
/// # Errors
/// 400 for an orderId that is not a number or an unknown type.
pub async fn list_notifications(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListNotificationsQuery>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let kind = match query.kind.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(s.parse::<NotificationType>().map_err(|e| ApiError::invalid_parameter("type", e))?),
    };
    Ok(Json(notifications::list_notifications(&state.pool, query.order_id, kind).await?))
}
