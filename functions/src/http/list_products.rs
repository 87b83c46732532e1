//! `GET /api/products`: the seeded catalogue.

use axum::{Json, extract::State};
use shared::db::products::{self, Product};

use super::{ApiError, AppState, ErrorBody};

/// Lists products.
#[utoipa::path(
    get, path = "/api/products", tag = "catalogue",
    responses(
        (status = 200, description = "All products", body = [Product]),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 503 when the database is down.
pub async fn list_products(State(state): State<AppState>) -> Result<Json<Vec<Product>>, ApiError> {
    Ok(Json(products::list_products(&state.pool).await?))
}
