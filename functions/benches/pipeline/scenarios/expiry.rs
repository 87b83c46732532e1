//! Scenario 4, expiry: many orders stuck in Processing for 20 minutes, expired by one sweep, and
//! the time until every `OrderExpired` notification exists.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::{
    env::Env,
    report::{Row, Rule},
    scaled, server,
};

/// Inserts `n` Processing orders last changed 20 minutes ago.
async fn seed_stale_orders(pool: &PgPool, n: usize) {
    sqlx::query(
        "insert into orders (user_id, product_id, quantity, price, total, status, created_at, updated_at)
         select 1, 2, 1, 10.00, 10.00, 'Processing', now() - interval '30 minutes', now() - interval '20 minutes'
         from generate_series(1, $1)",
    )
    .bind(i64::try_from(n).unwrap())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("analyze orders").execute(pool).await.unwrap();
}

/// Seconds from `started` (database time, epoch seconds) until the last notification was written.
async fn notified_after(env: &Env, started: f64) -> f64 {
    let last: f64 = sqlx::query_scalar("select extract(epoch from max(created_at))::float8 from notifications")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    last - started
}

/// 4. Expiry.
pub async fn expiry(rows: &mut Vec<Row>) {
    let n = scaled(100_000);
    let notified = "select count(*) from notifications";
    let patience = Duration::from_secs(400);

    let env = Env::new("expiry_base").await;
    seed_stale_orders(&env.pool, n).await;
    let base = server::baseline(&env, "pipeline", 0).await;
    let before = base.cpu_split();
    let sweep: Value = base.client.post(format!("{}/expire", base.base)).send().await.unwrap().json().await.unwrap();
    env.wait_for(notified, n as i64, patience).await;
    let base_cpu = server::cpu_us_per(before, base.cpu_split(), n);
    let base_sweep = sweep["sweep_s"].as_f64().unwrap();
    let base_total = notified_after(&env, sweep["started"].as_f64().unwrap()).await;
    base.stop().await;
    env.drop().await;

    // orderflow with its default time to live (10 minutes) and a cron run every second, so that
    // the benchmark does not wait for the minute.
    let env = Env::new("expiry_of").await;
    seed_stale_orders(&env.pool, n).await;
    let of = server::orderflow(&env, "all", &[("EXPIRY_SCHEDULE", "* * * * * *")]).await;
    // From ready: the first tick comes within a second.
    let before = of.cpu_split();
    env.wait_for(notified, n as i64, patience).await;
    let of_cpu = server::cpu_us_per(before, of.cpu_split(), n);
    // From the claim of the tick that found the orders, in database time.
    let (started, of_sweep): (f64, f64) = sqlx::query_as(
        "select extract(epoch from r.started_at)::float8, extract(epoch from r.finished_at - r.started_at)::float8
         from cron_runs r where r.outcome = 'Done' and r.affected > 0 order by r.started_at limit 1",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let of_total = notified_after(&env, started).await;
    of.stop().await;
    env.drop().await;

    rows.push(Row {
        scenario: "4 expiry",
        metric: format!("s for one sweep to expire {n}"),
        orderflow: of_sweep,
        baseline: Some(base_sweep),
        rule: Rule::None,
        chart: Some("4 expiry: s for the sweep"),
    });
    rows.push(Row {
        scenario: "4 expiry",
        metric: format!("s from the sweep's start until all {n} OrderExpired notifications exist"),
        orderflow: of_total,
        baseline: Some(base_total),
        rule: Rule::RatioAtMost(1.15),
        chart: Some("4 expiry: s until all notified"),
    });
    for (i, process) in server::CPU_PARTS.into_iter().enumerate() {
        rows.push(Row {
            scenario: "4 expiry",
            metric: format!("CPU µs per expired order, {process}"),
            orderflow: of_cpu[i],
            baseline: Some(base_cpu[i]),
            rule: Rule::None,
            chart: None,
        });
    }
}
