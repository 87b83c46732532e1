//! Scenario 3, in-flight capacity: many orders waiting on slow payments at once. Each side runs
//! in a child process of its own (this benchmark run again with `--in-flight-side`), so that each
//! side's peak memory is measured on a fresh process.

use std::time::Duration;

use orderflow::app::Role;

use crate::{
    baseline,
    env::{AMQP, Env},
    load::{direct_creates, http_creates},
    orderflow::start_orderflow,
    report::{Row, Rule},
    rss::PeakRss,
    scaled,
};

/// One side of the in-flight scenario: seconds from the last create until every order is
/// Completed, and the process's peak RSS. Runs in a child process of its own (see `main`), so
/// each side's memory is measured on a fresh process.
pub async fn in_flight_side(side: &str) -> (f64, f64) {
    let n = scaled(10_000);
    let delay = Duration::from_secs(5);
    let completed = "select count(*) from orders where status = 'Completed'";
    let env = Env::new("inflight").await;
    let peak = PeakRss::start();
    let (done_after, stop): (f64, Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()>>) = if side == "baseline"
    {
        let base = baseline::Baseline::start(env.pool.clone(), AMQP, env.topology.clone(), delay, 10_000).await;
        let creates = direct_creates(&env.pool, n, Some(base.wake.clone())).await;
        let done = env.wait_for(completed, n as i64, Duration::from_secs(300)).await;
        ((done - creates.finished).as_secs_f64(), Box::new(move || Box::pin(base.stop())))
    } else {
        let orderflow = start_orderflow(&env, Role::All, |c| c.payment_delay_ms = 5000).await;
        let creates = if std::env::var_os("BENCH_INFLIGHT_DIRECT").is_some() {
            direct_creates(&env.pool, n, None).await
        } else {
            http_creates(&orderflow, n).await
        };
        let done = env.wait_for(completed, n as i64, Duration::from_secs(300)).await;
        ((done - creates.finished).as_secs_f64(), Box::new(move || Box::pin(orderflow.stop())))
    };
    let peak = peak.stop();
    stop().await;
    env.drop().await;
    (done_after, peak)
}

/// 3. In-flight capacity: each side in its own process.
pub fn in_flight(rows: &mut Vec<Row>) {
    let n = scaled(10_000);
    let run = |side: &str| -> (f64, f64) {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--in-flight-side", side])
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "the {side} in-flight run failed");
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().find(|l| l.starts_with("in-flight ")).expect("no result line");
        let mut fields = line.split_whitespace().skip(1).map(|v| v.parse::<f64>().unwrap());
        (fields.next().unwrap(), fields.next().unwrap())
    };
    let (base_time, base_peak) = run("baseline");
    let (of_time, of_peak) = run("orderflow");
    eprintln!("  baseline: done {base_time:.1} s after the last create, peak RSS {base_peak:.0} MiB");
    eprintln!("  orderflow: done {of_time:.1} s after the last create, peak RSS {of_peak:.0} MiB");
    rows.push(Row {
        scenario: "3 in-flight",
        metric: format!("s from last create to all {n} Completed (5 s payments)"),
        orderflow: of_time,
        baseline: Some(base_time),
        more_is_better: false,
        rule: Rule::RatioAtMost(1.2),
    });
    rows.push(Row {
        scenario: "3 in-flight",
        metric: "peak RSS of the process, MiB (each side in its own process)".into(),
        orderflow: of_peak,
        baseline: Some(base_peak),
        more_is_better: false,
        rule: Rule::Below(150.0, "MiB"),
    });
}
