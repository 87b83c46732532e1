//! `cargo bench -p orderflow --bench pipeline`: how fast, how many at once, how much memory.
//!
//! Against the real PostgreSQL and RabbitMQ, each scenario runs against two servers, each a
//! process of its own on its own database and queue names: the release `orderflow` binary with
//! its default settings (logging as shipped), and the baseline (`baseline.rs`: the same work by
//! hand with axum, sqlx and lapin, served by this benchmark started again with
//! `--baseline-server <mode>`). The load comes over HTTP from this process (64 keep-alive
//! connections). Each scenario runs `BENCH_REPEATS` times (default 3); the table gives each side's
//! median, the median of the runs' ratios and their spread, and an SVG chart of the same is
//! written to `pipeline.svg` in cargo's target temporary directory, or to `BENCH_CHART` (the
//! committed `docs/benchmarks/pipeline.svg` for BENCHMARKS.md). Nothing here asserts a speed.
//!
//! The files: `env.rs`, a run's database and queue names; `server.rs`, the two server processes;
//! `baseline.rs`, the baseline server; `load.rs`, orders created over HTTP; `rss.rs`, memory and
//! CPU readings from `/proc`; `report.rs`, the rows, medians, ratios and the table; `chart.rs`,
//! the SVG; `scenarios/`, one file a scenario. This file reads the arguments and the environment
//! and runs the scenarios in their order.
//!
//! Environment: `BENCH_SCALE` (default 1.0; 0.1 for a quick look), `BENCH_REPEATS`, `BENCH_ONLY`
//! (a subset: `create`, `pipeline`, `inflight`, `expiry`, `idle`; and `tracing`, only when
//! named), `BENCH_KEEP` (keep the databases), `BENCH_CHART` (where the SVG goes),
//! `BENCH_ORDERFLOW_BIN` (another build of the binary, for the profile) and `BENCH_SET_<NAME>`
//! (sets `<NAME>` for orderflow, to switch a part off for the profile).

mod baseline;
mod chart;
mod env;
mod load;
mod report;
mod rss;
mod scenarios;
mod server;

use std::time::Instant;

use report::{print_table, repeated};
use scenarios::{
    create::create_throughput, expiry::expiry, idle::idle, in_flight::in_flight, pipeline::pipeline,
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
    if let Some(mode) = args.iter().position(|a| a == "--baseline-server").map(|i| args[i + 1].clone()) {
        runtime.block_on(baseline::serve(&mode));
        return;
    }
    runtime.block_on(async {
        let started = Instant::now();
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let named = |name: &str| only.split(',').any(|o| o == name);
        let wanted = |name: &str| only.is_empty() || named(name);
        let repeats: usize = std::env::var("BENCH_REPEATS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
        let mut summaries = Vec::new();
        if wanted("create") {
            summaries.extend(repeated("1: create throughput", repeats, create_throughput).await);
        }
        if wanted("pipeline") {
            summaries.extend(repeated("2: pipeline throughput", repeats, pipeline).await);
        }
        if wanted("inflight") {
            summaries.extend(repeated("3: in-flight capacity", repeats, in_flight).await);
        }
        if wanted("expiry") {
            summaries.extend(repeated("4: expiry", repeats, expiry).await);
        }
        if wanted("idle") {
            summaries.extend(repeated("5: idle", repeats, idle).await);
        }
        if named("tracing") {
            summaries.extend(repeated("6: tracing", repeats, tracing_cost).await);
        }
        let table = print_table(&summaries, repeats, started.elapsed());
        let path = std::env::var("BENCH_CHART")
            .unwrap_or_else(|_| concat!(env!("CARGO_TARGET_TMPDIR"), "/pipeline.svg").into());
        match chart::draw(&summaries, std::path::Path::new(&path)) {
            Ok(()) => eprintln!("chart written to {path}"),
            Err(e) => eprintln!("could not draw the chart at {path}: {e}"),
        }
        #[expect(clippy::print_stdout, reason = "the benchmark's report")]
        {
            println!("\n{table}");
        }
    });
}
