//! `GET /api/orders/{id}`: one order.

use axum::{Json, extract::State};
use serde::Deserialize;
use shared::{db::orders, domain::Order};

use super::{ApiError, ApiPath, AppState};

/// The `{id}` path segment.
#[derive(Debug, Deserialize)]
pub struct OrderPath {
    /// The order id.
    pub id: i64,
}

/// Returns one order.
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
