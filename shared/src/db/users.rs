//! Users: who may log in, what they may do, and the changes admins make to them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// Constraint names callers map to client errors.
pub mod constraints {
    /// Another user has this e-mail: the exact one, or one differing only by case.
    pub const EMAIL_TAKEN: [&str; 2] = ["users_email_key", "users_email_lower_key"];
}

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
    /// Whether the user may operate the system (every user's orders, dead letters, users, the board).
    pub is_admin: bool,
    /// A disabled user cannot log in, and their tokens are refused.
    pub disabled: bool,
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
    /// Disabled users may not log in.
    pub disabled: bool,
    /// The password is the published demo one, usable only on a loopback-only process.
    pub password_is_demo: bool,
}

impl Credentials {
    /// The user's current state, as [`account_state`] reads it.
    pub fn account_state(&self) -> AccountState {
        AccountState { is_admin: self.is_admin, disabled: self.disabled, password_is_demo: self.password_is_demo }
    }
}

/// What a request made with a user's token may do now (tokens outlive changes to the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    /// Whether the user is an admin now.
    pub is_admin: bool,
    /// Whether the user is disabled now.
    pub disabled: bool,
    /// Whether the user's password is still the published demo one.
    pub password_is_demo: bool,
}

/// A user to create.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    /// Login e-mail (unique, case-insensitively).
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// The argon2 PHC string of the password.
    pub password_hash: &'a str,
    /// Whether the user is an admin.
    pub is_admin: bool,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserChanges<'a> {
    /// A new display name.
    pub name: Option<&'a str>,
    /// The argon2 PHC string of a new password (which is then no longer the demo one).
    pub password_hash: Option<&'a str>,
    /// Promote or demote.
    pub is_admin: Option<bool>,
    /// Disable or enable.
    pub disabled: Option<bool>,
}

/// The credentials of the user with this e-mail (case-insensitive), if any.
///
/// # Errors
/// Database errors.
pub async fn find_credentials_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        r#"
        select id as user_id, password_hash, is_admin, disabled, password_is_demo
        from users where lower(email) = lower($1)
        "#,
        email
    )
    .fetch_optional(pool)
    .await
}

/// Replaces user `id`'s password hash `old` by `new` (the same password hashed again), unless
/// it changed meanwhile; whether it was replaced.
///
/// # Errors
/// Database errors.
pub async fn replace_password_hash(pool: &PgPool, id: i64, old: &str, new: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!("update users set password_hash = $3 where id = $1 and password_hash = $2", id, old, new)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The password hash of the enabled admin with this e-mail (case-insensitive), if there is one:
/// the board's basic authentication admits enabled admins only, and the demo password only if
/// `demo_password_allowed`.
///
/// # Errors
/// Database errors.
pub async fn admin_password_hash(
    pool: &PgPool,
    email: &str,
    demo_password_allowed: bool,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"
        select password_hash from users
        where lower(email) = lower($1) and is_admin and not disabled and (not password_is_demo or $2)
        "#,
        email,
        demo_password_allowed
    )
    .fetch_optional(pool)
    .await
}

/// What the user with this id may do now; `None` if there is no such user.
///
/// # Errors
/// Database errors.
pub async fn account_state(pool: &PgPool, id: i64) -> sqlx::Result<Option<AccountState>> {
    sqlx::query_as!(AccountState, "select is_admin, disabled, password_is_demo from users where id = $1", id)
        .fetch_optional(pool)
        .await
}

/// Every user, by id.
///
/// # Errors
/// Database errors.
pub async fn list_users(pool: &PgPool) -> sqlx::Result<Vec<User>> {
    sqlx::query_as!(User, "select id, email, name, is_admin, disabled, created_at from users order by id")
        .fetch_all(pool)
        .await
}

/// The user with this e-mail (case-insensitive), if any.
///
/// # Errors
/// Database errors.
pub async fn find_user_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "select id, email, name, is_admin, disabled, created_at from users where lower(email) = lower($1)",
        email
    )
    .fetch_optional(pool)
    .await
}

/// Creates a user.
///
/// # Errors
/// A taken e-mail violates one of [`constraints::EMAIL_TAKEN`]; other database errors.
pub async fn insert_user(pool: &PgPool, user: NewUser<'_>) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        r#"
        insert into users (email, name, password_hash, is_admin)
        values ($1, $2, $3, $4)
        returning id, email, name, is_admin, disabled, created_at
        "#,
        user.email,
        user.name,
        user.password_hash,
        user.is_admin
    )
    .fetch_one(pool)
    .await
}

/// Applies `changes` to the user with this id, in one statement; `None` if there is no such user.
/// A new password clears the demo flag.
///
/// # Errors
/// Database errors.
pub async fn update_user(pool: &PgPool, id: i64, changes: UserChanges<'_>) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"
        update users set
            name = coalesce($2, name),
            password_hash = coalesce($3, password_hash),
            password_is_demo = password_is_demo and $3::text is null,
            is_admin = coalesce($4, is_admin),
            disabled = coalesce($5, disabled)
        where id = $1
        returning id, email, name, is_admin, disabled, created_at
        "#,
        id,
        changes.name,
        changes.password_hash,
        changes.is_admin,
        changes.disabled
    )
    .fetch_optional(pool)
    .await
}

/// Makes the user with this e-mail an enabled admin with this password (no longer the demo one),
/// creating the user, named `name`, if there is none. Safe to race with another process doing
/// the same: one inserts, the other updates.
///
/// # Errors
/// Database errors.
pub async fn upsert_admin(pool: &PgPool, email: &str, name: &str, password_hash: &str) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        r#"
        insert into users (email, name, password_hash, is_admin)
        values ($1, $2, $3, true)
        on conflict (lower(email)) do update
        set password_hash = excluded.password_hash, password_is_demo = false, is_admin = true, disabled = false
        returning id, email, name, is_admin, disabled, created_at
        "#,
        email,
        name,
        password_hash
    )
    .fetch_one(pool)
    .await
}

/// The e-mails of enabled users whose password is still the published demo one.
///
/// # Errors
/// Database errors.
pub async fn demo_password_users(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!("select email from users where password_is_demo and not disabled order by id")
        .fetch_all(pool)
        .await
}
