//! Settings orderflow generates once and every replica shares (the `settings` table).

use sqlx::PgPool;

/// The value stored under `name`, storing `candidate` first if there is none. Concurrent callers
/// with different candidates all get the one value that was written first.
///
/// # Errors
/// Database errors.
pub async fn get_or_insert(pool: &PgPool, name: &str, candidate: &str) -> sqlx::Result<String> {
    // Two statements, not one: a statement's snapshot would miss a row that a concurrent
    // start-up committed while this insert waited on it, and return nothing.
    sqlx::query!("insert into settings (name, value) values ($1, $2) on conflict (name) do nothing", name, candidate)
        .execute(pool)
        .await?;
    sqlx::query_scalar!("select value from settings where name = $1", name).fetch_one(pool).await
}
