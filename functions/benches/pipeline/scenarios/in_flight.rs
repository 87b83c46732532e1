//! Scenario 3, in-flight capacity: many orders waiting on slow (5-second) payments at once in
//! one process: how soon after the last create all are decided, and the server's peak memory.

use std::time::Duration;

use crate::{
    env::Env,
    load::http_creates,
    report::{Row, Rule},
    scaled,
    server::{self, Server},
};

/// Seconds from the last create until every order is Completed, and the server's peak RSS in MiB.
async fn side(tag: &str, n: usize, start: impl AsyncFnOnce(&Env) -> Server) -> (f64, f64) {
    let env = Env::new(tag).await;
    let server = start(&env).await;
    let creates = http_creates(&server, n).await;
    let completed = "select count(*) from orders where status = 'Completed'";
    let done = env.wait_for(completed, n as i64, Duration::from_secs(300)).await;
    let peak = server.peak_rss_mib();
    server.stop().await;
    env.drop().await;
    ((done - creates.finished).as_secs_f64(), peak)
}

/// 3. In-flight capacity.
pub async fn in_flight(rows: &mut Vec<Row>) {
    let n = scaled(10_000);
    let (base_time, base_peak) =
        side("inflight_base", n, async |env| server::baseline(env, "pipeline", 5000).await).await;
    let (of_time, of_peak) = side("inflight_of", n, async |env| {
        server::orderflow(env, "all", &[("PAYMENT_DELAY_MS", "5000"), ("PAYMENT_SUCCESS_RATE", "1.0")]).await
    })
    .await;
    rows.push(Row {
        scenario: "3 in-flight",
        metric: format!("s from the last create to all {n} Completed (5 s payments)"),
        orderflow: of_time,
        baseline: Some(base_time),
        rule: Rule::RatioAtMost(1.1),
        chart: Some("3 in flight: s from last create to all decided"),
    });
    rows.push(Row {
        scenario: "3 in-flight",
        metric: "peak RSS of the server process, MiB".into(),
        orderflow: of_peak,
        baseline: Some(base_peak),
        rule: Rule::RatioAtMost(1.5),
        chart: Some("3 in flight: peak RSS, MiB"),
    });
}
