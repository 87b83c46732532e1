//! The password checker: argon2 verification on a few dedicated threads behind a short queue.
//!
//! One check holds about 7 MiB (19 MiB for a hash made with argon2's defaults) for tens of
//! milliseconds, so how many run at once bounds the process's memory and CPU. A caller first
//! takes a [`Place`] (a running or waiting slot); when none is free the request is refused at
//! once (429) instead of waiting, and one client address holds at most half of the places, so a
//! flood from one address cannot keep everyone else out.
//!
//! Each thread keeps its argon2 working memory (the 7 MiB of today's hashes) from one check to
//! the next. Letting argon2 allocate it per check made the allocator keep about three copies per
//! thread: 185 MiB RSS after a 20 s flood on two threads, against 65 MiB with the memory kept.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, SyncSender},
    },
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, PasswordHash},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Runs password checks; cheap to clone (every clone feeds the same threads).
#[derive(Clone, Debug)]
pub struct PasswordChecker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Running plus waiting checks: threads + queue permits.
    places: Arc<Semaphore>,
    /// Places held per client address; an address without places has no entry, so this holds
    /// at most as many entries as there are places.
    holders: Mutex<HashMap<IpAddr, usize>>,
    /// Most places one client address may hold.
    share: usize,
    /// Work for the threads. Every job carries its place, so the channel never holds more jobs
    /// than there are places.
    jobs: SyncSender<Job>,
}

/// The client's right to one password check, taken before any other work for the attempt.
#[derive(Debug)]
pub struct Place {
    shared: Arc<Shared>,
    client: IpAddr,
    _permit: OwnedSemaphorePermit,
}

/// No place was free: every thread is busy and the queue is full, or this client address holds
/// its share already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

struct Job {
    password: String,
    hash: String,
    reply: oneshot::Sender<bool>,
    // Freed by the thread when the check is done, not when the request gives up waiting.
    _place: Place,
}

impl PasswordChecker {
    /// Starts `threads` checking threads (at least one) with room for `queue` waiting checks.
    ///
    /// # Panics
    /// If the operating system refuses to start a thread.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let places = threads + queue;
        let (jobs, receiver) = mpsc::sync_channel(places);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || work(&receiver))
                .expect("cannot start a password-check thread");
        }
        let shared = Shared {
            places: Arc::new(Semaphore::new(places)),
            holders: Mutex::new(HashMap::new()),
            share: (places / 2).max(1),
            jobs,
        };
        PasswordChecker { shared: Arc::new(shared) }
    }

    /// Takes a place for a check on behalf of `client`, if one is free and the address has not
    /// used up its share.
    ///
    /// # Errors
    /// [`Busy`] when no place is free for this client.
    pub fn reserve(&self, client: IpAddr) -> Result<Place, Busy> {
        let mut holders = self.shared.holders.lock().expect("password checker lock poisoned");
        if holders.get(&client).is_some_and(|held| *held >= self.shared.share) {
            return Err(Busy);
        }
        let permit = self.shared.places.clone().try_acquire_owned().map_err(|_| Busy)?;
        *holders.entry(client).or_insert(0) += 1;
        Ok(Place { shared: self.shared.clone(), client, _permit: permit })
    }
}

impl Place {
    /// Whether `password` matches the argon2 PHC string `hash`; false for a malformed hash.
    pub async fn verify(self, password: String, hash: String) -> bool {
        let (reply, answer) = oneshot::channel();
        let jobs = self.shared.jobs.clone();
        // The place bounds the jobs in the channel, so it cannot be full; it is closed only if
        // every thread died, and then no password can be checked.
        if jobs.try_send(Job { password, hash, reply, _place: self }).is_err() {
            tracing::error!("no password-check thread is running");
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut holders = self.shared.holders.lock().expect("password checker lock poisoned");
        if let Some(held) = holders.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                holders.remove(&self.client);
            }
        }
    }
}

/// One checking thread: takes jobs until every sender is gone.
fn work(receiver: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = receiver.lock().expect("password checker lock poisoned").recv();
        let Ok(job) = job else { return };
        // The request gave up (its client disconnected): spare the work.
        if job.reply.is_closed() {
            continue;
        }
        let Job { password, hash, reply, _place: place } = job;
        let ok = verify(&mut memory, password.as_bytes(), &hash);
        // A hash made with argon2's defaults (before 2026-12, until its user logs in again and it
        // is made again) needs 19 MiB: not kept for the thread's life.
        if memory.len() > crate::accounts::PASSWORD_M_COST_KIB as usize {
            memory = Vec::new();
        }
        // Free the place before answering, so the caller may take it again at once.
        drop(place);
        let _ = reply.send(ok);
    }
}

/// What argon2's `verify_password` does (parse the PHC string, hash with its parameters and
/// salt, compare in constant time), in `memory` rather than in a fresh allocation.
fn verify(memory: &mut Vec<Block>, password: &[u8], hash: &str) -> bool {
    let Ok(hash) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm.as_str()), Params::try_from(&hash)) else {
        return false;
    };
    let Ok(version) = hash.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let blocks = params.block_count();
    memory.resize(blocks, Block::default());
    let mut computed = vec![0; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2.hash_password_into_with_memory(password, salt, &mut computed, &mut memory[..blocks]).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&computed).is_ok_and(|computed| computed == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_holds_at_most_half_of_the_places() {
        let checker = PasswordChecker::new(1, 3);

        let first = checker.reserve(address(2));
        let second = checker.reserve(address(2));

        assert!(first.is_ok() && second.is_ok());
        assert_eq!(checker.reserve(address(2)).err(), Some(Busy));
        assert!(checker.reserve(address(3)).is_ok(), "another address still gets a place");
    }

    #[test]
    fn no_place_is_left_once_every_place_is_taken() {
        let checker = PasswordChecker::new(1, 1);
        let _taken = [checker.reserve(address(2)).unwrap(), checker.reserve(address(3)).unwrap()];

        assert_eq!(checker.reserve(address(4)).err(), Some(Busy));
    }

    #[test]
    fn a_returned_or_refused_place_leaves_no_trace() {
        let checker = PasswordChecker::new(1, 1);
        let taken = [checker.reserve(address(2)).unwrap(), checker.reserve(address(3)).unwrap()];
        assert_eq!(checker.reserve(address(4)).err(), Some(Busy));

        drop(taken);

        assert!(checker.shared.holders.lock().unwrap().is_empty());
        assert!(checker.reserve(address(4)).is_ok());
    }

    #[tokio::test]
    async fn a_check_on_the_threads_tells_the_right_password_from_a_wrong_one() {
        // The seeded admin's hash (migrations/20261126000007_seed.sql): admin123.
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$iFhZrM+1ia/glPFA0rln0w$t98OQQd306CfRrpCoay6jY2/TwftFSRceHElD2Vq/sc";
        let checker = PasswordChecker::new(2, 0);

        let right = checker.reserve(address(2)).unwrap().verify("admin123".into(), hash.into()).await;
        let wrong = checker.reserve(address(2)).unwrap().verify("admin124".into(), hash.into()).await;
        let malformed = checker.reserve(address(2)).unwrap().verify("admin123".into(), "not a hash".into()).await;

        assert!(right);
        assert!(!wrong && !malformed);
    }

    #[test]
    fn the_kept_memory_check_agrees_with_argon2s_own_across_parameters_and_sizes() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut memory = Vec::new();
        // Larger, then smaller, then default memory: the kept buffer is resized each time.
        for (m_cost, t_cost, algorithm) in
            [(32768, 1, Algorithm::Argon2id), (1024, 3, Algorithm::Argon2i), (19456, 2, Algorithm::Argon2id)]
        {
            let params = Params::new(m_cost, t_cost, 1, None).unwrap();
            let hasher = Argon2::new(algorithm, Version::V0x13, params);
            let hash = hasher.hash_password_with_salt(b"correct horse", b"a-fixed-salt-16b").unwrap().to_string();
            let tampered = format!("{}A", &hash[..hash.len() - 1]);

            for (password, hash) in [("correct horse", &hash), ("correct hors", &hash), ("correct horse", &tampered)] {
                let theirs = Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok();
                assert_eq!(verify(&mut memory, password.as_bytes(), hash), theirs, "{password} against {hash}");
            }
        }
    }
}
