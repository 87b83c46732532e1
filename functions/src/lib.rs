//! orderflow's functions and the process that hosts them: the HTTP API, and (built on the
//! shared crate) the outbox relay.

pub mod app;
pub mod cli;
pub mod http;
