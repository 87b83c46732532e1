//! Password checks under attack, for login and the board alike: an attempt is first admitted
//! (the failure throttle per account and per client address, then a place on the bounded
//! checker), and only then is the user looked up and the password verified. A refused attempt
//! costs neither the database nor argon2, and tells the client when to come back.

mod checker;
mod throttle;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{extract::ConnectInfo, http::Extensions};
use shared::Config;

pub use checker::{Busy, PasswordChecker, Place};
pub use throttle::{FailureThrottle, ThrottleSettings};

/// Checked when the e-mail is unknown (or, on the board, not an admin's), so that every refusal
/// takes the same time and counts against the same throttle: a caller cannot probe which
/// e-mails exist or are admins.
///
/// Made with the parameters of every new hash (`crate::accounts::password_hasher`), so that it
/// takes as long to check.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=7168,t=5,p=1$UnD00xvZ5QItAeBe0tHHZA$b5RWJzriS6jZYEeXSuCd7PAFe7sygf/PzCy8IAK7n5Q";

/// Most password-check threads when `PASSWORD_CHECK_THREADS` is unset: each check holds about
/// 7 MiB, so more cores than this would not make logins faster enough to be worth the memory.
const DEFAULT_THREADS_MAX: usize = 4;

/// How long a client refused for want of a free place should wait: a place frees within tens
/// of milliseconds, and a second keeps retrying clients from adding to the load.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The one way passwords are checked. Cheap to clone; every clone shares the threads and the
/// throttle.
#[derive(Clone, Debug)]
pub struct PasswordGate {
    checker: PasswordChecker,
    throttle: Arc<FailureThrottle>,
}

/// Why an attempt was refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every password-check place is taken (or this address holds its share).
    Busy,
    /// The account or the client address has used up its failed attempts for now.
    Throttled(Duration),
}

impl Refused {
    /// When the client may try again.
    pub fn retry_after(self) -> Duration {
        match self {
            Refused::Busy => BUSY_RETRY_AFTER,
            Refused::Throttled(wait) => wait,
        }
    }

    /// `Retry-After` in whole seconds, rounded up and at least 1.
    pub fn retry_after_secs(self) -> u64 {
        let wait = self.retry_after();
        (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
    }
}

/// An admitted attempt: it holds a place on the checker until its password is verified.
#[derive(Debug)]
pub struct Admitted {
    place: Place,
    throttle: Arc<FailureThrottle>,
    account: u64,
    client: IpAddr,
}

impl PasswordGate {
    /// The gate for `PASSWORD_CHECK_THREADS`, `PASSWORD_CHECK_QUEUE` and the `LOGIN_*` limits.
    pub fn from_config(config: &Config) -> Self {
        let threads = config.password_check_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from).min(DEFAULT_THREADS_MAX),
            usize::from,
        );
        let throttle = ThrottleSettings {
            per_account: config.login_failures_per_account,
            per_address: config.login_failures_per_address,
            window: Duration::from_secs(config.login_throttle_window_secs),
        };
        Self::new(threads, usize::from(config.password_check_queue), throttle)
    }

    /// A gate with `threads` checking threads, `queue` waiting places and these limits.
    pub fn new(threads: usize, queue: usize, throttle: ThrottleSettings) -> Self {
        PasswordGate {
            checker: PasswordChecker::new(threads, queue),
            throttle: Arc::new(FailureThrottle::new(throttle)),
        }
    }

    /// Admits an attempt on the account `email` from `client`, or says why not and for how long.
    ///
    /// # Errors
    /// [`Refused`] when the throttle or the checker has no room for it.
    pub fn admit(&self, email: &str, client: IpAddr) -> Result<Admitted, Refused> {
        let account = self.throttle.account(email);
        self.throttle.admit(account, client).map_err(Refused::Throttled)?;
        let place = self.checker.reserve(client).map_err(|Busy| Refused::Busy)?;
        Ok(Admitted { place, throttle: self.throttle.clone(), account, client })
    }
}

impl Admitted {
    /// Whether `password` is the password of the user whose hash was found; `None` (no such
    /// user) checks the decoy hash and is always false. A false answer counts as a failure.
    pub async fn verify(self, password: String, hash: Option<String>) -> bool {
        let Admitted { place, throttle, account, client } = self;
        let found = hash.is_some();
        let matches = place.verify(password, hash.unwrap_or_else(|| DECOY_HASH.to_owned())).await;
        let ok = found && matches;
        if !ok {
            throttle.record_failure(account, client);
        }
        ok
    }
}

/// The client's address as the throttle and the checker count it, from the `ConnectInfo` the
/// server records for each connection (`crate::server::serve` does, as axum's
/// `into_make_service_with_connect_info::<SocketAddr>()` would). An IPv6 client counts as its /64
/// network, which one host is usually given whole. Without `ConnectInfo`, as in tests that
/// call a router directly, every client is `0.0.0.0`: one shared address.
///
/// Behind a proxy this is the proxy's address, so the per-address limit then applies to all of
/// its clients together.
pub fn client_address(extensions: &Extensions) -> IpAddr {
    let Some(ConnectInfo(address)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    match address.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoy_takes_what_a_real_hash_takes() {
        assert!(crate::accounts::hashed_with_current_parameters(DECOY_HASH));
    }

    #[test]
    fn retry_after_is_rounded_up_to_a_whole_second() {
        assert_eq!(Refused::Throttled(Duration::from_millis(1)).retry_after_secs(), 1);
        assert_eq!(Refused::Throttled(Duration::from_millis(2001)).retry_after_secs(), 3);
        assert_eq!(Refused::Throttled(Duration::ZERO).retry_after_secs(), 1);
        assert_eq!(Refused::Busy.retry_after_secs(), 1);
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64_network_and_a_mapped_ipv4_one_as_ipv4() {
        let address_of = |ip: &str| {
            let mut extensions = Extensions::new();
            extensions.insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 4000)));
            client_address(&extensions)
        };

        assert_eq!(address_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(address_of("::ffff:192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(address_of("192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_address(&Extensions::new()), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[tokio::test]
    async fn an_attempt_on_an_unknown_user_is_refused_and_counts_as_a_failure() {
        let limits = ThrottleSettings { per_account: 1, per_address: 10, window: Duration::from_secs(60) };
        let gate = PasswordGate::new(1, 0, limits);
        let client = IpAddr::from([127, 0, 0, 2]);

        let ok = gate.admit("nobody@example.com", client).unwrap().verify("whatever".into(), None).await;

        assert!(!ok);
        assert!(matches!(gate.admit("nobody@example.com", client), Err(Refused::Throttled(_))));
    }
}
