//! The scenarios, one file each, numbered as in BENCHMARKS.md. Each pushes its rows of the
//! report; `main` decides which run, in which order, and how often.

pub mod create;
pub mod expiry;
pub mod idle;
pub mod in_flight;
pub mod pipeline;
pub mod tracing;
