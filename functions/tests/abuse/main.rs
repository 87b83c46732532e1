//! The abuse suite (issue 17): real `orderflow` processes on the real PostgreSQL and RabbitMQ,
//! misused on purpose (slow clients, junk requests, a broker alarm, unpublishable rows, orphaned
//! jobs, large backlogs, messages from other versions), then checked for the invariant each limit
//! protects: connections closed by the server, bounded metrics, readiness per role, nothing lost
//! and nothing doubled, rows parked and replayed, orphans marked, memory under its budget.
//!
//! Some cases hurt shared services (a RabbitMQ memory alarm), so like the fault suite its cases
//! are ignored by default and run one at a time, after the fault suite in CI:
//!
//! ```sh
//! cargo test -p orderflow --test abuse -- --ignored --test-threads=1
//! ```
//!
//! Each case bounds its own time and leaves the services as it found them, even when it fails.
//! Logs of the processes are kept under `$CARGO_TARGET_DIR/tmp/faults/<case>/`.

// The fault suite's cluster of real processes, shared rather than copied.
#[path = "../faults/cluster.rs"]
#[allow(dead_code, reason = "this suite uses only part of the fault suite's cluster")]
mod cluster;

mod http_limits;
mod memory;
mod relay;
mod retention;
mod versions;

use std::sync::LazyLock;

/// Cases may hurt shared services: never two at once, even without `--test-threads=1`.
pub static ONE_AT_A_TIME: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));
