//! Accounts at start-up: `ADMIN_EMAIL` / `ADMIN_PASSWORD` make that user an enabled admin with
//! that password (replacing the demo password), and a process that listens beyond loopback says
//! in its log how to replace a demo password it will refuse.

use std::net::SocketAddr;

use anyhow::Context;
use argon2::{Argon2, PasswordVerifier};
use shared::{Config, config::Secret, db::users};
use sqlx::PgPool;

use super::{hash_password, listens_on_loopback_only};

/// The name a bootstrap admin created from nothing gets.
const BOOTSTRAP_NAME: &str = "Admin";

/// Bootstraps the admin if `ADMIN_PASSWORD` is set, and says whether this process accepts the
/// demo password: only when it listens on loopback addresses alone (`listening`). If it does
/// not, the users still holding the demo password are named in a warning with the way out.
///
/// # Errors
/// The database is unreachable, or hashing failed.
pub async fn prepare(pool: &PgPool, config: &Config, listening: &[SocketAddr]) -> anyhow::Result<bool> {
    if let Some(password) = &config.admin_password {
        bootstrap_admin(pool, &config.admin_email, password).await?;
    }
    let demo_password_allowed = listens_on_loopback_only(listening.iter().copied());
    if !demo_password_allowed {
        let addresses: Vec<String> = listening.iter().map(ToString::to_string).collect();
        for email in users::demo_password_users(pool).await.context("Failed to look for demo passwords")? {
            tracing::warn!(
                "{email} still has the published demo password, which is refused because orderflow listens on {} \
                 (not only on loopback). Set ADMIN_EMAIL={email} and ADMIN_PASSWORD to a password of your own and \
                 restart, or run `orderflow users set-password --email {email}`",
                addresses.join(", ")
            );
        }
    }
    Ok(demo_password_allowed)
}

/// Makes `email` an enabled admin whose password is `password`, unless it is one already.
async fn bootstrap_admin(pool: &PgPool, email: &str, password: &Secret) -> anyhow::Result<()> {
    let existing = users::find_credentials_by_email(pool, email).await.context("Failed to look up ADMIN_EMAIL")?;
    if let Some(existing) = existing
        && existing.is_admin
        && !existing.disabled
        && !existing.password_is_demo
    {
        // Hashing again at every start-up would change nothing but the salt; a hash made with
        // other parameters (argon2's defaults, before 2026-12) is made again with today's.
        let current = super::hashed_with_current_parameters(&existing.password_hash);
        let password = password.expose().to_owned();
        let unchanged = current
            && tokio::task::spawn_blocking(move || {
                Argon2::default().verify_password(password.as_bytes(), existing.password_hash.as_str()).is_ok()
            })
            .await
            .context("The password check failed")?;
        if unchanged {
            tracing::info!(user.id = existing.user_id, "the bootstrap admin {email} is already set up");
            return Ok(());
        }
    }
    let hash = hash_password(password.expose().to_owned()).await?;
    let admin = users::upsert_admin(pool, email, BOOTSTRAP_NAME, &hash)
        .await
        .context("Failed to set up the bootstrap admin")?;
    tracing::info!(user.id = admin.id, "the bootstrap admin {email} is set up with ADMIN_PASSWORD");
    Ok(())
}
