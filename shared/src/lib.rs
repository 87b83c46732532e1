//! What every orderflow function needs: configuration, telemetry, the order domain, events,
//! the database and the messaging layer.

pub mod backoff;
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
