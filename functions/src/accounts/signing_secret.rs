//! The secret that signs API tokens: `JWT_SECRET` when it is set (never a published value), or
//! else a random one generated once and kept in PostgreSQL, so that every process on the same
//! database signs and accepts the same tokens and `cargo run` needs no setting.

use anyhow::Context;
use base64::Engine;
use shared::{
    Config,
    config::{Secret, parse_jwt_secret},
    db,
};
use sqlx::PgPool;

/// The `settings` row that holds the generated secret.
const SETTING: &str = "jwt_secret";

/// The secret to sign and check tokens with.
///
/// # Errors
/// `JWT_SECRET` is a published value (the command line refuses it already; a configuration
/// built in code is checked here too), or the database is unreachable.
pub async fn token_secret(pool: &PgPool, config: &Config) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.jwt_secret {
        return parse_jwt_secret(secret.expose()).map_err(|e| anyhow::anyhow!("JWT_SECRET {e}"));
    }
    let mut candidate = [0_u8; 32];
    rand::fill(&mut candidate);
    let candidate = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(candidate);
    let secret = db::settings::get_or_insert(pool, SETTING, &candidate)
        .await
        .context("Failed to read or store the generated token secret")?;
    tracing::info!("JWT_SECRET is not set: tokens are signed with the random secret kept in the database");
    parse_jwt_secret(&secret).map_err(|e| anyhow::anyhow!("the stored token secret {e}"))
}
