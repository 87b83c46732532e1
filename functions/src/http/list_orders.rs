//! `GET /api/orders?status=&page=&pageSize=&after=`: a page of orders, newest first: the
//! caller's own, or everyone's for an admin. No request walks or counts the whole table: `page`
//! skips at most [`MAX_DEPTH`] orders, `after` (the previous page's `nextAfter`, a keyset
//! cursor) reaches any depth, and `total` stops counting at [`MAX_TOTAL`]. Every parameter's
//! bounds hold on its own (no rule joins two parameters), so the OpenAPI document states them
//! all as minimums and maximums.

use axum::{Extension, Json, extract::State};
use serde::{Deserialize, Serialize};
use shared::{
    db::orders::{self, OrderFilter},
    domain::{Order, OrderStatus},
};

use super::{ApiError, ApiQuery, AppState, AuthUser, ErrorBody};

/// Largest page.
pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;
/// Most orders `page` may skip (`(page - 1) × pageSize`); deeper pages are reached with `after`.
pub const MAX_DEPTH: i64 = 10_000;
/// Largest `page`: the deepest that skips at most `MAX_DEPTH` orders at the largest page size,
/// so that any `page` and `pageSize` within their bounds may be combined.
pub const MAX_PAGE: i64 = MAX_DEPTH / MAX_PAGE_SIZE + 1;
/// `total` counts up to this many orders; past it, `totalCapped` is true.
pub const MAX_TOTAL: i64 = 10_000;

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListOrdersQuery {
    /// Only orders in this status.
    #[serde(default)]
    #[param(inline, value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// 1-based page (default 1), at most 101 (10,000 orders deep at 100 per page);
    /// go deeper with `after`. With `after`, pages count from the cursor.
    #[serde(default)]
    #[param(minimum = 1, maximum = 101)]
    page: Option<i64>,
    /// Orders per page, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<i64>,
    /// Only orders older than the order with this id: the `nextAfter` of the previous page
    /// (keyset pagination, as deep as the table goes at the cost of one page).
    #[serde(default)]
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    after: Option<i64>,
}

/// A page of orders.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    items: Vec<Order>,
    page: i64,
    page_size: i64,
    /// Orders matching `status` (cursor aside), counted up to 10,000.
    total: i64,
    /// Whether more orders match than `total` says (it stopped counting at 10,000).
    total_capped: bool,
    /// Pass as `after` for the next page; absent on the last page.
    next_after: Option<i64>,
}

/// Lists orders, newest first: the caller's own, or every user's for an admin.
#[utoipa::path(
    get, path = "/api/orders", tag = "orders",
    params(ListOrdersQuery),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "`invalid_parameter` (with `field`): unknown status, page, pageSize or after out of range", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 for an unknown status or a parameter out of range.
pub async fn list_orders(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiQuery(query): ApiQuery<ListOrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<OrderStatus>().map_err(|e| ApiError::invalid_parameter("status", e.to_string()))?),
    };
    let page_size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::invalid_parameter("pageSize", format!("must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let page = query.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::invalid_parameter(
            "page",
            format!("must be between 1 and {MAX_PAGE}: go deeper with `after` (each page's nextAfter)"),
        ));
    }
    // Within bounds, at most MAX_DEPTH: `MAX_PAGE` is chosen so.
    let offset = (page - 1) * page_size;
    if query.after.is_some_and(|after| after < 1) {
        return Err(ApiError::invalid_parameter("after", "must be an order id (1 or more)"));
    }
    let filter = OrderFilter { owner: caller.owner_filter(), status, before_id: query.after };
    // One more than the page tells whether another page follows.
    let mut items = orders::list_orders(&state.pool, filter, page_size + 1, offset).await?;
    let more = items.len() > usize::try_from(page_size).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let next_after = if more { items.last().map(|o| o.id) } else { None };
    let counted = orders::count_orders_up_to(&state.pool, filter, MAX_TOTAL + 1).await?;
    Ok(Json(OrderPage {
        items,
        page,
        page_size,
        total: counted.min(MAX_TOTAL),
        total_capped: counted > MAX_TOTAL,
        next_after,
    }))
}
