//! `GET /api/orders/{id}`: one order.

use axum::{Json, extract::State};
use serde::Deserialize;
use shared::{db::orders, domain::Order};

use super::{ApiError, ApiPath, AppState, ErrorBody};

/// The `{id}` path segment.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrderPath {
    /// The order id.
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
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 for an id that is not a number, 404 if there is no such order.
pub async fn get_order(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<OrderPath>,
) -> Result<Json<Order>, ApiError> {
    orders::get_order(&state.pool, path.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no order has id {}", path.id)))
}
