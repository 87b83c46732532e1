//! orderflow's integration tests: one binary, each test with its own database and queue names,
//! against the real PostgreSQL and RabbitMQ.

mod gateways;
mod helpers;
mod process;

#[cfg(feature = "mimalloc")]
mod allocator;
mod auth;
mod bad_input;
mod board_ui;
mod create_order;
mod database;
mod dead_letters;
mod dlq;
mod expiry;
mod functions;
mod idempotency;
mod journal;
mod limits;
mod live_log;
mod outbox;
mod reads;
mod relay_wake;
mod retention;
mod trace_context;
mod workers;
mod wrong_state;
