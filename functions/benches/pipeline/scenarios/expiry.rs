//! Scenario 4, expiry sweep: many stale Processing orders expired by one sweep, and the time
//! until every OrderExpired notification exists.

use std::time::{Duration, Instant};

use orderflow::app::Role;
use shared::db::orders;
use sqlx::PgPool;

use crate::{
    baseline,
    env::{AMQP, Env},
    orderflow::start_orderflow,
    report::{Row, Rule},
    scaled,
};

/// Inserts `n` Processing orders last changed an hour ago.
async fn seed_stale_orders(pool: &PgPool, n: usize) {
    sqlx::query(
        "insert into orders (user_id, product_id, quantity, price, total, status, created_at, updated_at)
         select 1, 2, 1, 10.00, 10.00, 'Processing', now() - interval '2 hours', now() - interval '1 hour'
         from generate_series(1, $1)",
    )
    .bind(i64::try_from(n).unwrap())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("analyze orders").execute(pool).await.unwrap();
}

/// 4. Expiry sweep.
pub async fn expiry(rows: &mut Vec<Row>) {
    let n = scaled(100_000);
    let notified = "select count(*) from notifications";

    let env = Env::new("expiry_base").await;
    seed_stale_orders(&env.pool, n).await;
    let base = baseline::Baseline::start(env.pool.clone(), AMQP, env.topology.clone(), Duration::ZERO, 10_000).await;
    let started = Instant::now();
    let now = chrono::Utc::now();
    loop {
        let expired =
            orders::expire_batch(&env.pool, now - chrono::Duration::minutes(10), now, 5_000, "bench", (None, None))
                .await
                .unwrap();
        base.wake.notify_one();
        if expired < 5_000 {
            break;
        }
    }
    let base_sweep = started.elapsed().as_secs_f64();
    let done = env.wait_for(notified, n as i64, Duration::from_secs(400)).await;
    let base_total = (done - started).as_secs_f64();
    base.stop().await;
    env.drop().await;

    let env = Env::new("expiry_of").await;
    seed_stale_orders(&env.pool, n).await;
    let orderflow = start_orderflow(&env, Role::All, |c| {
        c.order_ttl_secs = 600;
        c.expiry_schedule = "* * * * * *".into();
    })
    .await;
    env.wait_for(notified, n as i64, Duration::from_secs(400)).await;
    // From the claim of the tick that found the orders, in database time.
    let (sweep, total): (f64, f64) = sqlx::query_as(
        "select extract(epoch from r.finished_at - r.started_at)::float8,
                extract(epoch from (select max(created_at) from notifications) - r.started_at)::float8
         from cron_runs r where r.outcome = 'Done' and r.affected > 0 order by r.started_at limit 1",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    orderflow.stop().await;
    env.drop().await;

    rows.push(Row {
        scenario: "4 expiry",
        metric: format!("s for one cron run to expire {n}"),
        orderflow: sweep,
        baseline: Some(base_sweep),
        more_is_better: false,
        rule: Rule::None,
    });
    rows.push(Row {
        scenario: "4 expiry",
        metric: format!("s until all {n} OrderExpired notifications exist"),
        orderflow: total,
        baseline: Some(base_total),
        more_is_better: false,
        rule: Rule::RatioAtMost(1.3),
    });
}
