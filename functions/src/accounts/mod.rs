//! Accounts outside any one request: hashing a new password, the secret that signs tokens, the
//! bootstrap admin, and whether this process may accept the seeded demo password.

mod bootstrap;
mod signing_secret;

use std::net::SocketAddr;

use anyhow::Context;
use argon2::{Argon2, PasswordHasher};

pub use bootstrap::prepare;
pub use signing_secret::token_secret;

/// The argon2 PHC string of `password`, with a fresh salt and argon2's default parameters (those
/// of the seeded hash). Runs off the async workers: argon2 is deliberately slow.
///
/// # Errors
/// The blocking task failed, or argon2 refused the input (it does not for passwords that passed
/// `shared::domain::account::check_new_password`).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(password.as_bytes()).map(|hash| hash.to_string())
    })
    .await
    .context("The password hashing task failed")?
    .map_err(|e| anyhow::anyhow!("Failed to hash a password: {e}"))
}

/// Whether every address this process listens on is a loopback address, so that nothing outside
/// this machine can reach it: only then is the published demo password accepted (as RabbitMQ's
/// `guest` user logs in from localhost only). `0.0.0.0` and `::` listen everywhere.
pub fn listens_on_loopback_only(addresses: impl IntoIterator<Item = SocketAddr>) -> bool {
    addresses.into_iter().all(|address| address.ip().to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_loopback_addresses_count_as_loopback() {
        assert!(listens_on_loopback_only([addr("127.0.0.1:8080"), addr("[::1]:8081")]));
        assert!(listens_on_loopback_only([addr("[::ffff:127.0.0.1]:8080")]));
        assert!(!listens_on_loopback_only([addr("127.0.0.1:8080"), addr("0.0.0.0:8081")]));
        assert!(!listens_on_loopback_only([addr("[::]:8080")]));
        assert!(!listens_on_loopback_only([addr("192.168.1.10:8080")]));
    }

    #[tokio::test]
    async fn a_hashed_password_verifies_and_another_does_not() {
        use argon2::PasswordVerifier;
        let hash = hash_password("a long enough password".into()).await.unwrap();
        let verify = |password: &str| Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok();
        assert!(verify("a long enough password"));
        assert!(!verify("another password"));
    }
}
