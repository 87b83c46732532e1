//! What every orderflow function needs: configuration, telemetry, the order domain, events,
//! the database, the job journal and the messaging layer.
//!
//! Modules depend one way, never back (no two import each other):
//! - `clock`, `config`, `backoff`, `shutdown`, `metrics`, `domain`: depend on no other module;
//! - `events`, `payments`, `db` (all SQL): on `domain`; `telemetry`: on `config`;
//! - `retention`: on `db`, `config`; `journal`: on `db`, `events`, `metrics`, `backoff`, `shutdown`;
//! - `messaging`: on `config`, `events`, `db`, `metrics`, `backoff`, `shutdown` and `journal`
//!   (its consumer and relay report to the journal, which knows nothing of messaging).

pub mod backoff;
#[cfg(feature = "bench-switches")]
pub mod bench_switches;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod journal;
pub mod messaging;
pub mod metrics;
pub mod payments;
pub mod retention;
pub mod shutdown;
pub mod telemetry;

pub use config::Config;
