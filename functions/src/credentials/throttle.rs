//! The login throttle: failed password checks counted per account (the lowercased e-mail) and
//! per client address, with governor's keyed GCRA limiters. An attempt on an account or from an
//! address that has used up its failures is refused before any password is checked; successful
//! logins are not counted, so an office behind one address is only slowed by its own mistakes.
//!
//! governor counts a cell whenever a check passes and has no way to look without counting, so
//! [`LookOrCount`] adds one: a look runs governor's own decision and returns it as an `Err`,
//! which by `StateStore`'s contract leaves the state unchanged.

use std::{
    convert::Infallible,
    hash::{BuildHasher, Hash, RandomState},
    net::IpAddr,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    nanos::Nanos,
    state::{
        StateStore,
        keyed::{DashMapStateStore, ShrinkableKeyedStateStore},
    },
};

/// How many failures each key may have per window.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    /// Failures one account may have per window.
    pub per_account: u32,
    /// Failures one client address may have per window.
    pub per_address: u32,
    /// The window: a key's failures all come back within it.
    pub window: Duration,
}

/// Failed logins per account and per client address.
#[derive(Debug)]
pub struct FailureThrottle {
    accounts: Limiter<u64>,
    addresses: Limiter<IpAddr>,
    // Keys of accounts are a keyed hash of the e-mail: a fixed size whatever the e-mail's
    // length, and collisions that no caller can aim for.
    hasher: RandomState,
    window: Duration,
    swept: Mutex<Instant>,
}

type Limiter<K> = RateLimiter<LookOrCount<K>, Store<K>, DefaultClock>;

impl FailureThrottle {
    /// A throttle with these limits (a limit of 0 counts as 1).
    pub fn new(settings: ThrottleSettings) -> Self {
        FailureThrottle {
            accounts: limiter(settings.per_account, settings.window),
            addresses: limiter(settings.per_address, settings.window),
            hasher: RandomState::new(),
            window: settings.window,
            swept: Mutex::new(Instant::now()),
        }
    }

    /// The account key of an e-mail: trimmed and lowercased, as the user lookups match it.
    pub fn account(&self, email: &str) -> u64 {
        self.hasher.hash_one(email.trim().to_lowercase())
    }

    /// `Err(wait)` when the account or the address has no failure left: the attempt is refused,
    /// and may be retried after `wait`. Counts nothing.
    ///
    /// # Errors
    /// How long until both keys may fail once more.
    pub fn admit(&self, account: u64, client: IpAddr) -> Result<(), Duration> {
        let waits =
            [wait(&self.accounts, &LookOrCount::Look(account)), wait(&self.addresses, &LookOrCount::Look(client))];
        match waits.into_iter().flatten().max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed check against the account and the address.
    pub fn record_failure(&self, account: u64, client: IpAddr) {
        // A failure past the limit counts nothing more; the next attempt is refused anyway.
        let _ = self.accounts.check_key(&LookOrCount::Count(account));
        let _ = self.addresses.check_key(&LookOrCount::Count(client));
        self.sweep_now_and_then();
    }

    /// Forgets keys whose failures have all come back, once a window. New keys arrive only
    /// after a password check (a look adds none), so the maps hold at most the keys of about two
    /// windows' worth of checks, which the checker's threads bound.
    fn sweep_now_and_then(&self) {
        let mut swept = self.swept.lock().expect("login throttle lock poisoned");
        if swept.elapsed() < self.window {
            return;
        }
        *swept = Instant::now();
        self.accounts.retain_recent();
        self.accounts.shrink_to_fit();
        self.addresses.retain_recent();
        self.addresses.shrink_to_fit();
    }

    /// Keys held (accounts, addresses), for tests.
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.accounts.len(), self.addresses.len())
    }
}

/// `limit` failures at once, then one more every `window / limit`: all are back after `window`.
fn limiter<K: Hash + Eq + Clone>(limit: u32, window: Duration) -> Limiter<K> {
    let limit = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
    let quota =
        Quota::with_period(window / limit.get()).map_or_else(|| Quota::per_second(limit), |q| q.allow_burst(limit));
    RateLimiter::new(quota, Store(DashMapStateStore::default()), DefaultClock::default())
}

/// How long until `key` may fail again, if it may not now.
fn wait<K: Hash + Eq + Clone>(limiter: &Limiter<K>, key: &LookOrCount<K>) -> Option<Duration> {
    limiter.check_key(key).err().map(|not_until| not_until.wait_time_from(limiter.clock().now()))
}

/// A key with what to do with it: look whether a failure would be allowed, or count one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LookOrCount<K> {
    Look(K),
    Count(K),
}

/// governor's dashmap store, keyed by the bare key, answering looks without changing anything.
#[derive(Debug)]
struct Store<K: Hash + Eq + Clone>(DashMapStateStore<K>);

impl<K: Hash + Eq + Clone> StateStore for Store<K> {
    type Key = LookOrCount<K>;

    fn measure_and_replace<T, F, E>(&self, key: &Self::Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        match key {
            LookOrCount::Count(key) => self.0.measure_and_replace(key, f),
            // A key never counted is fresh; looking must not add it to the map either.
            LookOrCount::Look(key) if !self.0.contains_key(key) => f(None).map(|(decision, _)| decision),
            LookOrCount::Look(key) => {
                let looked = self.0.measure_and_replace(key, |state| -> Result<(Infallible, Nanos), Result<T, E>> {
                    match f(state) {
                        Ok((decision, _)) => Err(Ok(decision)),
                        Err(refusal) => Err(Err(refusal)),
                    }
                });
                match looked {
                    Ok(never) => match never {},
                    Err(decision) => decision,
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<LookOrCount<K>> for Store<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_account: u32, per_address: u32, window: Duration) -> FailureThrottle {
        FailureThrottle::new(ThrottleSettings { per_account, per_address, window })
    }

    fn address(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_account_is_refused_once_its_failures_are_used_up_and_told_how_long_to_wait() {
        let throttle = throttle(3, 100, Duration::from_secs(60));
        let account = throttle.account("Admin@Example.com");
        for n in 0..3 {
            assert!(throttle.admit(account, address(n)).is_ok(), "failure {n} is allowed");
            throttle.record_failure(account, address(n));
        }

        let refused = throttle.admit(throttle.account(" admin@example.COM "), address(9));

        let wait = refused.expect_err("a fourth failure is refused, whatever the case of the e-mail");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(throttle.admit(throttle.account("other@example.com"), address(9)).is_ok());
    }

    #[test]
    fn an_address_is_refused_for_every_account_once_its_failures_are_used_up() {
        let throttle = throttle(100, 2, Duration::from_secs(60));
        throttle.record_failure(throttle.account("a@example.com"), address(2));
        throttle.record_failure(throttle.account("b@example.com"), address(2));

        assert!(throttle.admit(throttle.account("c@example.com"), address(2)).is_err());
        assert!(throttle.admit(throttle.account("c@example.com"), address(3)).is_ok());
    }

    #[test]
    fn looking_counts_nothing_and_adds_no_key() {
        let throttle = throttle(1, 1, Duration::from_secs(60));
        let account = throttle.account("a@example.com");

        for _ in 0..100 {
            assert!(throttle.admit(account, address(2)).is_ok());
        }

        assert_eq!(throttle.len(), (0, 0));
        throttle.record_failure(account, address(2));
        assert!(throttle.admit(account, address(2)).is_err());
        assert!(throttle.admit(account, address(2)).is_err(), "looking at a refused key changes nothing");
    }

    #[test]
    fn keys_whose_failures_have_come_back_are_forgotten() {
        let window = Duration::from_millis(20);
        let throttle = throttle(1, 1, window);
        throttle.record_failure(throttle.account("a@example.com"), address(2));
        throttle.record_failure(throttle.account("b@example.com"), address(3));
        std::thread::sleep(window * 3);

        throttle.record_failure(throttle.account("c@example.com"), address(4));

        assert_eq!(throttle.len(), (1, 1), "only the key counted since the last window is kept");
    }
}
