//! orderflow's security tests (issue 11): forged tokens, the published secret and demo password,
//! the bootstrap admin, user management, per-user data, admin-only endpoints and the offline
//! docs page. One binary, each test with its own database and queue names, against the real
//! PostgreSQL and RabbitMQ, as the API tests.

// The API tests' `spawn_app` and friends, shared rather than copied.
#[path = "../api/helpers.rs"]
#[allow(dead_code, reason = "this binary uses only part of the API tests' helpers")]
mod helpers;
mod support;

mod admin_only;
mod bootstrap_admin;
mod cross_user;
mod demo_password;
mod docs;
mod forged_tokens;
mod secrets;
mod user_management;
