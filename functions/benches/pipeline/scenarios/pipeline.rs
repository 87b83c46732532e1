//! Scenario 2, pipeline throughput: from the first create to the last notification, with every
//! order going through payment and completion, against `orderflow all` and the baseline server
//! running the whole pipeline.

use std::time::Duration;

use crate::{
    env::Env,
    load::http_creates,
    report::{Row, Rule},
    scaled,
    server::{self, Server},
};

/// What one side measured: orders/s, the create phase in s, p50 and p99 latency in ms, and CPU
/// microseconds per order of the server, of PostgreSQL and of RabbitMQ.
struct Side {
    rate: f64,
    create_s: f64,
    latency: (f64, f64),
    cpu_us: [f64; 3],
}

async fn side(tag: &str, n: usize, start: impl AsyncFnOnce(&Env) -> Server) -> Side {
    let env = Env::new(tag).await;
    let server = start(&env).await;
    let before = server.cpu_split();
    let creates = http_creates(&server, n).await;
    let done = env.wait_for("select count(*) from notifications", n as i64, Duration::from_secs(300)).await;
    let after = server.cpu_split();
    let latency = env.notification_latency().await;
    server.stop().await;
    env.drop().await;
    Side {
        rate: n as f64 / (done - creates.started).as_secs_f64(),
        create_s: (creates.finished - creates.started).as_secs_f64(),
        latency,
        cpu_us: server::cpu_us_per(before, after, n),
    }
}

/// 2. Pipeline throughput.
pub async fn pipeline(rows: &mut Vec<Row>) {
    let n = scaled(20_000);
    let base = side("pipeline_base", n, async |env| server::baseline(env, "pipeline", 0).await).await;
    let of = side("pipeline_of", n, async |env| {
        server::orderflow(env, "all", &[("PAYMENT_DELAY_MS", "0"), ("PAYMENT_SUCCESS_RATE", "1.0")]).await
    })
    .await;

    let row = |metric: String, of: f64, base: f64| Row {
        scenario: "2 pipeline",
        metric,
        orderflow: of,
        baseline: Some(base),
        rule: Rule::None,
        chart: None,
    };
    rows.push(Row {
        rule: Rule::RatioAtLeast(0.85),
        chart: Some("2 pipeline: orders/s"),
        ..row(format!("orders/s, first create to last notification ({n})"), of.rate, base.rate)
    });
    rows.push(row("create phase, s".into(), of.create_s, base.create_s));
    rows.push(row("p50 create→notification, ms (backlog included)".into(), of.latency.0, base.latency.0));
    rows.push(row("p99 create→notification, ms (backlog included)".into(), of.latency.1, base.latency.1));
    for (i, process) in server::CPU_PARTS.into_iter().enumerate() {
        rows.push(row(format!("CPU µs per order, {process}"), of.cpu_us[i], base.cpu_us[i]));
    }
}
