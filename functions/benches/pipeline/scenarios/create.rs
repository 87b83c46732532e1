//! Scenario 1, create throughput: orders created over HTTP by `orderflow api` (its relay
//! publishing them) against the baseline server doing the same (its handler inserting, its relay
//! publishing), and against the baseline's insert alone.

use crate::{
    env::Env,
    load::{CONCURRENCY, Creates, http_creates},
    report::{Row, Rule},
    scaled,
    server::{self, Server},
};

/// `n` creates against the server `start` starts on a fresh environment tagged `tag`.
async fn burst(tag: &str, n: usize, start: impl AsyncFnOnce(&Env) -> Server) -> Creates {
    let env = Env::new(tag).await;
    let server = start(&env).await;
    let creates = http_creates(&server, n).await;
    server.stop().await;
    env.drop().await;
    creates
}

/// 1. Create throughput.
pub async fn create_throughput(rows: &mut Vec<Row>) {
    let n = scaled(20_000);
    let base = burst("create_base", n, async |env| server::baseline(env, "relay", 0).await).await;
    let insert_only = burst("create_insert", n, async |env| server::baseline(env, "insert", 0).await).await;
    let of = burst("create_of", n, async |env| server::orderflow(env, "api", &[]).await).await;

    rows.push(Row {
        scenario: "1 create",
        metric: format!("creates/s ({n} POSTs, {CONCURRENCY} connections; baseline: insert, relay publishing)"),
        orderflow: of.per_second(),
        baseline: Some(base.per_second()),
        rule: Rule::RatioAtLeast(0.85),
        chart: Some("1 create: creates/s"),
    });
    rows.push(Row {
        scenario: "1 create",
        metric: "creates/s (baseline: the insert alone, no relay)".into(),
        orderflow: of.per_second(),
        baseline: Some(insert_only.per_second()),
        rule: Rule::None,
        chart: None,
    });
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        rows.push(Row {
            scenario: "1 create",
            metric: format!("{name} latency, ms"),
            orderflow: of.percentile(p),
            baseline: Some(base.percentile(p)),
            rule: Rule::None,
            chart: (name == "p99").then_some("1 create: p99 latency, ms"),
        });
    }
}
