//! Security tests (issue 11): authentication under attack. Apps run in the test process
//! (`helpers`, shared with the API tests) or, where the process itself is measured, as the real
//! `orderflow` binary in a child process (`child`).

#[path = "../api/helpers.rs"]
#[allow(dead_code, reason = "the API tests' helpers; this target uses some of them")]
mod helpers;

mod child;

mod board_auth;
mod flood;
mod throttle;
