//! `GET /api/orders/{id}`: one order, if it is the caller's (any order for an admin).

use axum::{Extension, Json, extract::State};
use serde::Deserialize;
use shared::{db::orders, domain::Order};

use super::{ApiError, ApiPath, AppState, AuthUser, ErrorBody};

/// The `{id}` path segment.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrderPath {
    /// The order id.
    #[param(minimum = -9223372036854775808_i64, maximum = 9223372036854775807_i64)]
    pub id: i64,
}

/// Returns one order.
#[utoipa::path(
    get, path = "/api/orders/{id}", tag = "orders",
    params(OrderPath),
    responses(
        (status = 200, description = "The order", body = Order),
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
pub async fn get_order(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiPath(path): ApiPath<OrderPath>,
) -> Result<Json<Order>, ApiError> {
    visible_order(&state, caller, path.id).await.map(Json)
}

/// The order with this id if the caller may see it. Another user's order is answered exactly as
/// a missing one, so a caller cannot learn which ids exist.
///
/// # Errors
/// 404 if there is no such order or it is another user's.
pub async fn visible_order(state: &AppState, caller: AuthUser, id: i64) -> Result<Order, ApiError> {
    orders::get_order(&state.pool, id)
        .await?
        .filter(|order| caller.may_access(order.user_id))
        .ok_or_else(|| ApiError::NotFound(format!("no order has id {id}")))
}
