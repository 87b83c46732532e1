//! `GET /api/notifications?orderId=&type=`: what the completion and expiry functions recorded,
//! about the caller's own orders (every order's for an admin).

use axum::{Extension, Json, extract::State};
use serde::Deserialize;
use shared::db::notifications::{self, Notification, NotificationType};

use super::{ApiError, ApiQuery, AppState, AuthUser, ErrorBody};

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListNotificationsQuery {
    /// Only this order's notifications.
    #[serde(default)]
    #[param(minimum = -9223372036854775808_i64, maximum = 9223372036854775807_i64)]
    order_id: Option<i64>,
    /// Only `OrderCompleted` or only `OrderExpired`.
    #[serde(default, rename = "type")]
    #[param(rename = "type", inline, value_type = Option<NotificationType>)]
    kind: Option<String>,
}

/// Lists notifications of the caller's orders (every order's for an admin), oldest first (at most 1000).
#[utoipa::path(
    get, path = "/api/notifications", tag = "orders",
    params(ListNotificationsQuery),
    responses(
        (status = 200, description = "Notifications", body = [Notification]),
        (status = 400, description = "`invalid_parameter`: orderId not a number or unknown type", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 for an orderId that is not a number or an unknown type.
pub async fn list_notifications(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiQuery(query): ApiQuery<ListNotificationsQuery>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let kind = match query.kind.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<NotificationType>().map_err(|e| ApiError::invalid_parameter("type", e))?),
    };
    Ok(Json(notifications::list_notifications(&state.pool, caller.owner_filter(), query.order_id, kind).await?))
}
