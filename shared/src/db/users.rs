//! Users: who may log in.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// A user as the API shows it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Login e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

/// What login needs to check a password.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user's id, the token's subject.
    pub user_id: i64,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// Whether the user may operate the system (dead letters, the board).
    pub is_admin: bool,
}

/// The credentials of the user with this e-mail (case-insensitive), if any.
///
/// # Errors
/// Database errors.
pub async fn find_credentials_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        "select id as user_id, password_hash, is_admin from users where lower(email) = lower($1)",
        email
    )
    .fetch_optional(pool)
    .await
}

/// The password hash of the admin with this e-mail (case-insensitive), if there is one: the
/// board's basic authentication admits admins only.
///
/// # Errors
/// Database errors.
pub async fn admin_password_hash(pool: &PgPool, email: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("select password_hash from users where lower(email) = lower($1) and is_admin", email)
        .fetch_optional(pool)
        .await
}

/// Every user, by id.
///
/// # Errors
/// Database errors.
pub async fn list_users(pool: &PgPool) -> sqlx::Result<Vec<User>> {
    sqlx::query_as!(User, "select id, email, name, created_at from users order by id").fetch_all(pool).await
}
