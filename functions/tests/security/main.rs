//! orderflow's security tests (issue 11): forged tokens, the published secret and demo password,
//! the bootstrap admin, user management, per-user data, admin-only endpoints, the offline docs
//! page, and authentication under attack (throttles, the board's login, a login flood against
//! the real binary). Apps run in the test process (`helpers`, shared with the API tests, each
//! test with its own database and queue names) or, where the process itself is measured, as the
//! real `orderflow` binary in a child process (`child`).

// The API tests' `spawn_app` and friends, shared rather than copied.
mod child;
#[path = "../api/helpers.rs"]
#[allow(dead_code, reason = "this binary uses only part of the API tests' helpers")]
mod helpers;
mod support;

mod admin_only;
mod board_auth;
mod bootstrap_admin;
mod cross_user;
mod demo_password;
mod docs;
mod flood;
mod forged_tokens;
mod secrets;
mod throttle;
mod user_management;
