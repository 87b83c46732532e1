//! Scenario 2, pipeline throughput: from the first create to the last notification, with every
//! order going through payment and completion.

use std::time::Duration;

use orderflow::app::Role;

use crate::{
    baseline,
    env::{AMQP, Env},
    load::{direct_creates, http_creates},
    orderflow::start_orderflow,
    report::{Row, Rule},
    scaled,
};

/// 2. Pipeline throughput.
pub async fn pipeline(rows: &mut Vec<Row>) {
    let n = scaled(20_000);
    let notified = "select count(*) from notifications";

    let env = Env::new("pipeline_base").await;
    let base = baseline::Baseline::start(env.pool.clone(), AMQP, env.topology.clone(), Duration::ZERO, 10_000).await;
    let creates = direct_creates(&env.pool, n, Some(base.wake.clone())).await;
    let done = env.wait_for(notified, n as i64, Duration::from_secs(300)).await;
    let base_rate = n as f64 / (done - creates.started).as_secs_f64();
    let base_create_s = (creates.finished - creates.started).as_secs_f64();
    let base_latency = env.notification_latency().await;
    base.stop().await;
    env.drop().await;

    let env = Env::new("pipeline_of").await;
    let orderflow = start_orderflow(&env, Role::All, |_| {}).await;
    let creates = http_creates(&orderflow, n).await;
    let done = env.wait_for(notified, n as i64, Duration::from_secs(300)).await;
    let of_rate = n as f64 / (done - creates.started).as_secs_f64();
    let of_create_s = (creates.finished - creates.started).as_secs_f64();
    let of_latency = env.notification_latency().await;
    orderflow.stop().await;
    env.drop().await;

    rows.push(Row {
        scenario: "2 pipeline",
        metric: format!("orders/s, first create to last notification ({n})"),
        orderflow: of_rate,
        baseline: Some(base_rate),
        more_is_better: true,
        rule: Rule::RatioAtLeast(0.7),
    });
    rows.push(Row {
        scenario: "2 pipeline",
        metric: "create phase, s".into(),
        orderflow: of_create_s,
        baseline: Some(base_create_s),
        more_is_better: false,
        rule: Rule::None,
    });
    for (name, of, base) in [("p50", of_latency.0, base_latency.0), ("p99", of_latency.1, base_latency.1)] {
        rows.push(Row {
            scenario: "2 pipeline",
            metric: format!("{name} create→notification, ms (backlog included)"),
            orderflow: of,
            baseline: Some(base),
            more_is_better: false,
            rule: Rule::None,
        });
    }
}
