//! Accounts outside any one request: hashing a new password, the secret that signs tokens, the
//! bootstrap admin, and whether this process may accept the seeded demo password.

mod bootstrap;
mod signing_secret;

use std::net::SocketAddr;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

pub use bootstrap::prepare;
pub use signing_secret::token_secret;

/// argon2id's memory per password, in KiB (7 MiB), and its passes over it.
///
/// OWASP's Password Storage Cheat Sheet lists five argon2id settings that "provide an equal level
/// of defense" and differ only in trading memory for passes: from 46 MiB and one pass to 7 MiB
/// and five. argon2's default is one of them (19 MiB, two passes); this is the one that needs
/// the least memory, for about the same CPU (5 × 7 against 2 × 19 MiB of passes). Every check
/// holds this memory while it runs and its thread keeps it afterwards
/// (`crate::credentials::checker`), so it is what a login costs the process: 7 MiB rather
/// than 19 (issue 15). A hash keeps the settings it was made with, so older hashes still verify.
pub const PASSWORD_M_COST_KIB: u32 = 7 * 1024;
/// See [`PASSWORD_M_COST_KIB`].
pub const PASSWORD_T_COST: u32 = 5;

/// The argon2 that hashes new passwords ([`PASSWORD_M_COST_KIB`], [`PASSWORD_T_COST`], one lane).
///
/// # Panics
/// Never: the parameters are within argon2's bounds.
pub fn password_hasher() -> Argon2<'static> {
    let params = Params::new(PASSWORD_M_COST_KIB, PASSWORD_T_COST, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `hash` was made with the parameters [`password_hasher`] uses now.
pub fn hashed_with_current_parameters(hash: &str) -> bool {
    argon2::password_hash::phc::PasswordHash::new(hash)
        .ok()
        .filter(|hash| hash.algorithm.as_str() == "argon2id")
        .and_then(|hash| Params::try_from(&hash).ok())
        .is_some_and(|params| {
            params.m_cost() == PASSWORD_M_COST_KIB && params.t_cost() == PASSWORD_T_COST && params.p_cost() == 1
        })
}

/// The argon2 PHC string of `password`, with a fresh salt and [`password_hasher`]'s parameters.
/// Runs off the async workers: argon2 is deliberately slow.
///
/// # Errors
/// The blocking task failed, or argon2 refused the input (it does not for passwords that passed
/// `shared::domain::account::check_new_password`).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        password_hasher().hash_password(password.as_bytes()).map(|hash| hash.to_string())
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
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
        assert!(hashed_with_current_parameters(&hash));
    }

    #[test]
    fn hashes_of_other_parameters_are_not_current() {
        let default =
            "$argon2id$v=19$m=19456,t=2,p=1$iFhZrM+1ia/glPFA0rln0w$t98OQQd306CfRrpCoay6jY2/TwftFSRceHElD2Vq/sc";
        assert!(!hashed_with_current_parameters(default));
        assert!(!hashed_with_current_parameters("not a hash"));
        let argon2i = "$argon2i$v=19$m=7168,t=5,p=1$FD8EHYD1YvHF+OrhAfUfYw$nOZ3pKOBiWeG+nT+nVYbBBnRa098G21zndIkIzHR+Fs";
        assert!(!hashed_with_current_parameters(argon2i), "another algorithm");
    }
}
