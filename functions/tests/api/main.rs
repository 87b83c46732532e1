//! orderflow's integration tests: one binary, each test with its own database and queue names,
//! against the real PostgreSQL and RabbitMQ.

mod helpers;

mod auth;
mod bad_input;
mod create_order;
mod idempotency;
mod outbox;
mod reads;
