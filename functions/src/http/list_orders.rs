//! `GET /api/orders?status=&page=&pageSize=`: a page of orders, newest first: the caller's own,
//! or everyone's for an admin.

use axum::{Extension, Json, extract::State};
use serde::{Deserialize, Serialize};
use shared::{
    db::orders,
    domain::{Order, OrderStatus},
};

use super::{ApiError, ApiQuery, AppState, AuthUser, ErrorBody};

/// Largest page.
pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListOrdersQuery {
    /// Only orders in this status: Pending, Processing, Completed or Expired.
    #[serde(default)]
    status: Option<String>,
    /// 1-based page (default 1).
    #[serde(default)]
    page: Option<i64>,
    /// Orders per page, 1 to 100 (default 20).
    #[serde(default)]
    page_size: Option<i64>,
}

/// A page of orders.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    items: Vec<Order>,
    page: i64,
    page_size: i64,
    total: i64,
}

/// Lists orders, newest first: the caller's own, or every user's for an admin.
#[utoipa::path(
    get, path = "/api/orders", tag = "orders",
    params(ListOrdersQuery),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "`invalid_parameter`: unknown status or page out of range", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 for an unknown status or a page out of range.
pub async fn list_orders(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiQuery(query): ApiQuery<ListOrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(s.parse::<OrderStatus>().map_err(|e| ApiError::invalid_parameter("status", e.to_string()))?),
    };
    let page = query.page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::invalid_parameter("page", "must be 1 or more"));
    }
    let page_size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::invalid_parameter("pageSize", format!("must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let offset =
        (page - 1).checked_mul(page_size).ok_or_else(|| ApiError::invalid_parameter("page", "is too large"))?;
    let (items, total) = orders::list_orders(&state.pool, caller.owner_filter(), status, page_size, offset).await?;
    Ok(Json(OrderPage { items, page, page_size, total }))
}
