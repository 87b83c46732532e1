//! `GET /api/products`: the seeded catalogue.

use axum::{Json, extract::State};
use shared::db::products::{self, Product};

use super::{ApiError, AppState};

/// Lists products.
///
/// # Errors
/// 503 when the database is down.
pub async fn list_products(State(state): State<AppState>) -> Result<Json<Vec<Product>>, ApiError> {
    Ok(Json(products::list_products(&state.pool).await?))
}
