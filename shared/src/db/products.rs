//! Products: the seeded catalogue.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::domain::Money;

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Database id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// List price.
    pub price: Money,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// Every product, by id.
///
/// # Errors
/// Database errors.
pub async fn list_products(pool: &PgPool) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as!(Product, r#"select id, name, price as "price: Money", created_at from products order by id"#)
        .fetch_all(pool)
        .await
}
