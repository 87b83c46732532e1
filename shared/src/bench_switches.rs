//! Parts of the pipeline the benchmark's profile switches off, one at a time, to measure what
//! each costs (BENCHMARKS.md, "Where the time goes"). Compiled only with the `bench-switches`
//! feature, which no shipped build enables: `ORDERFLOW_BENCH_OFF=journal,relay` then turns the
//! job journal's reports (`journal`) or the outbox relay (`relay`) into no-ops.

use std::sync::OnceLock;

/// Whether `part` is switched off in this process (read once from `ORDERFLOW_BENCH_OFF`).
pub fn off(part: &str) -> bool {
    static OFF: OnceLock<Vec<String>> = OnceLock::new();
    OFF.get_or_init(|| std::env::var("ORDERFLOW_BENCH_OFF").unwrap_or_default().split(',').map(str::to_owned).collect())
        .iter()
        .any(|p| p == part)
}
