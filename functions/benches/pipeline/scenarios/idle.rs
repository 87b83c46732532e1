//! Scenario 5, idle: `orderflow all` as users start it: its start-up time (on a migrated
//! database) and its memory once started, beside the baseline server's.

use std::time::Duration;

use crate::{
    env::Env,
    report::{Row, Rule},
    server::{self, Server},
};

/// Seconds until ready, and RSS in MiB three seconds later.
async fn side(tag: &str, start: impl AsyncFnOnce(&Env) -> Server) -> (f64, f64) {
    let env = Env::new(tag).await;
    let server = start(&env).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let figures = (server.ready_after, server.rss_mib());
    server.stop().await;
    env.drop().await;
    figures
}

/// 5. Idle.
pub async fn idle(rows: &mut Vec<Row>) {
    let (base_ready, base_rss) = side("idle_base", async |env| server::baseline(env, "pipeline", 0).await).await;
    let (of_ready, of_rss) = side("idle_of", async |env| server::orderflow_not_logged_in(env, "all", &[]).await).await;
    rows.push(Row {
        scenario: "5 idle",
        metric: "RSS after start-up, MiB".into(),
        orderflow: of_rss,
        baseline: Some(base_rss),
        rule: Rule::Below(60.0, "MiB"),
        chart: Some("5 idle: RSS, MiB"),
    });
    rows.push(Row {
        scenario: "5 idle",
        metric: "s from process start to /health/ready = 200".into(),
        orderflow: of_ready,
        baseline: Some(base_ready),
        rule: Rule::Below(2.0, "s"),
        chart: None,
    });
}
