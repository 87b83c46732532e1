//! Scenario 1, create throughput: orders created over HTTP against the baseline's inserts alone,
//! and against the same inserts while the baseline's relay publishes them.

use orderflow::app::Role;

use crate::{
    baseline,
    env::{AMQP, Env},
    load::{CONCURRENCY, direct_creates, http_creates},
    orderflow::start_orderflow,
    report::{Row, Rule},
    scaled,
};

/// 1. Create throughput.
pub async fn create_throughput(rows: &mut Vec<Row>) {
    let n = scaled(20_000);

    // As the issue specifies it: the insert alone, nothing published.
    let env = Env::new("create_base").await;
    let base = direct_creates(&env.pool, n, None).await;
    env.drop().await;

    // The same inserts while a relay publishes them, as orderflow's API process does.
    let env = Env::new("create_base_relay").await;
    let relay = baseline::Baseline::start_relay_only(env.pool.clone(), AMQP, env.topology.clone()).await;
    let base_publishing = direct_creates(&env.pool, n, Some(relay.wake.clone())).await;
    relay.stop().await;
    env.drop().await;

    let env = Env::new("create_of").await;
    let orderflow = start_orderflow(&env, Role::Api, |c| {
        if std::env::var_os("BENCH_CREATE_NO_BROKER").is_some() {
            c.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
        }
    })
    .await;
    let of = http_creates(&orderflow, n).await;
    orderflow.stop().await;
    env.drop().await;

    let (of_rate, base_rate) = (of.per_second(), base.per_second());
    rows.push(Row {
        scenario: "1 create",
        metric: format!("creates/s ({n} POSTs at {CONCURRENCY} concurrent; baseline: the insert alone)"),
        orderflow: of_rate,
        baseline: Some(base_rate),
        more_is_better: true,
        rule: Rule::RatioAtLeast(0.8),
    });
    rows.push(Row {
        scenario: "1 create",
        metric: "creates/s (baseline: the insert while its relay publishes)".into(),
        orderflow: of_rate,
        baseline: Some(base_publishing.per_second()),
        more_is_better: true,
        rule: Rule::None,
    });
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        rows.push(Row {
            scenario: "1 create",
            metric: format!("{name} latency, ms (baseline: the insert alone)"),
            orderflow: of.percentile(p),
            baseline: Some(base.percentile(p)),
            more_is_better: false,
            rule: Rule::None,
        });
    }
}
