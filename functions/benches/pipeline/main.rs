//! `cargo bench -p orderflow --bench pipeline`: how fast, how many at once, how much memory.
//!
//! Against the real PostgreSQL and RabbitMQ, each scenario runs twice in this one process, each
//! run on its own database and queue names: once with orderflow started in-process (HTTP, apalis
//! workers, journal, relay: the product), once with the baseline (`baseline.rs`: the same work by
//! hand with sqlx and lapin). Results are ratios measured side by side; nothing here asserts a
//! speed. Scale with `BENCH_SCALE` (default 1.0; 0.1 for a quick look).
//!
//! The files: `env.rs`, a run's database and queue names; `orderflow.rs`, orderflow started
//! in-process; `load.rs`, orders created over HTTP or straight into the database; `rss.rs`, memory
//! readings; `report.rs`, the rows, best of the repeats, ratios and the table; `scenarios/`, one
//! file a scenario. This file reads the arguments and the environment and runs the scenarios in
//! their order.
//!
//! Environment: `BENCH_SCALE` (above), `BENCH_REPEATS` (runs of scenarios 1, 2 and 4, default 2),
//! `BENCH_ONLY` (a subset: `create`, `pipeline`, `inflight`, `expiry`, `idle`, `tracing`),
//! `BENCH_KEEP` (keep the databases), `BENCH_CREATE_NO_BROKER` (scenario 1 with no broker
//! reachable), `BENCH_INFLIGHT_DIRECT` (scenario 3's orderflow side inserts instead of POSTing).

mod baseline;
mod env;
mod load;
mod orderflow;
mod report;
mod rss;
mod scenarios;

use std::time::Instant;

use report::{print_table, repeated};
use scenarios::{
    create::create_throughput,
    expiry::expiry,
    idle::idle,
    in_flight::{in_flight, in_flight_side},
    pipeline::pipeline,
    tracing::tracing_cost,
};

/// `n` scaled by `BENCH_SCALE`, never below 10.
fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(10)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let args: Vec<String> = std::env::args().collect();
    if let Some(side) = args.iter().position(|a| a == "--in-flight-side").map(|i| args[i + 1].clone()) {
        let (time, peak) = runtime.block_on(in_flight_side(&side));
        #[expect(clippy::print_stdout, reason = "the child's report to its parent")]
        {
            println!("in-flight {time} {peak}");
        }
        return;
    }
    runtime.block_on(async {
        let started = Instant::now();
        let mut rows = Vec::new();
        // BENCH_ONLY=pipeline,expiry runs a subset (for profiling).
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
        if wanted("inflight") {
            eprintln!("scenario 3: in-flight capacity");
            in_flight(&mut rows);
        }
        // Repeated, alternating the two sides, keeping each side's best: a neighbour on the
        // machine (autovacuum, a checkpoint) then hurts one run, not the result.
        let repeats: usize = std::env::var("BENCH_REPEATS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
        if wanted("create") {
            rows.extend(repeated("1: create throughput", repeats, create_throughput).await);
        }
        if wanted("pipeline") {
            rows.extend(repeated("2: pipeline throughput", repeats, pipeline).await);
        }
        if wanted("expiry") {
            rows.extend(repeated("4: expiry sweep", repeats, expiry).await);
        }
        if wanted("idle") {
            eprintln!("scenario 5: idle");
            idle(&mut rows).await;
        }
        if wanted("tracing") {
            eprintln!("scenario 6: tracing");
            tracing_cost(&mut rows).await;
        }
        rows.sort_by_key(|r| r.scenario);
        let table = print_table(&rows, started.elapsed());
        #[expect(clippy::print_stdout, reason = "the benchmark's report")]
        {
            println!("\n{table}");
        }
    });
}
