//! `GET /api/orders/{id}/events`: an order's timeline (its creation and status, the events
//! written and published for it, the jobs that handled them with their results and errors, its
//! notifications), so a person can see why an order is where it is. Only the order's user and
//! admins see it.

use axum::{Extension, Json, extract::State};
use shared::db::timeline::{TimelineEntry, order_timeline};

use super::{
    ApiError, ApiPath, AppState, AuthUser, ErrorBody,
    get_order::{OrderPath, visible_order},
};

/// Returns the timeline of one order, oldest first.
#[utoipa::path(
    get, path = "/api/orders/{id}/events", tag = "orders",
    params(OrderPath),
    responses(
        (status = 200, description = "What happened to the order, in time order", body = [TimelineEntry]),
        (status = 400, description = "`invalid_parameter`: the id is not a number", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such order, or another user's (ids cannot be probed)", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 for an id that is not a number, 404 if there is no such order or it is another user's.
pub async fn order_events(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiPath(path): ApiPath<OrderPath>,
) -> Result<Json<Vec<TimelineEntry>>, ApiError> {
    // Admins see every order: the timeline's own emptiness tells them it is absent.
    if !caller.is_admin {
        visible_order(&state, caller, path.id).await?;
    }
    let timeline = order_timeline(&state.pool, path.id).await?;
    if timeline.is_empty() {
        return Err(ApiError::NotFound(format!("no order has id {}", path.id)));
    }
    Ok(Json(timeline))
}
