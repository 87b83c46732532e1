//! The expiry sweep, called directly with a stopped clock. Every call is bounded by
//! [`TICK_LIMIT`], so a batch loop that never ends fails with the test's name instead of
//! hanging the run.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use orderflow::{
    deps::{Externals, FunctionDeps},
    expire_orders::{TickOutcome, run_tick},
};
use shared::{
    clock::FixedClock,
    messaging::{OutboxRelay, OutboxSignal, Publisher, RelaySettings},
    metrics::Metrics,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    gateways::ScriptedGateway,
    helpers::{amqp_url, app, eventually, test_config},
};

const TTL: Duration = Duration::from_secs(600);

/// Far longer than a tick over a few dozen orders takes, even on a loaded machine.
const TICK_LIMIT: Duration = Duration::from_secs(30);

/// [`run_tick`], failing the test if it errs or does not return within [`TICK_LIMIT`].
async fn tick(scheduled_at: DateTime<Utc>, deps: &FunctionDeps, worker: &str) -> TickOutcome {
    tokio::time::timeout(TICK_LIMIT, run_tick(scheduled_at, deps, worker))
        .await
        .unwrap_or_else(|_| panic!("the expiry tick {scheduled_at} of {worker} did not end within {TICK_LIMIT:?}"))
        .unwrap()
}

fn deps(pool: &PgPool, now: DateTime<Utc>) -> FunctionDeps {
    deps_waking(pool, now, OutboxSignal::default())
}

/// Like [`deps`], waking the relay that listens on `outbox`.
fn deps_waking(pool: &PgPool, now: DateTime<Utc>, outbox: OutboxSignal) -> FunctionDeps {
    let mut config = test_config();
    config.payment_delay_ms = 0;
    config.order_ttl_secs = TTL.as_secs();
    let externals = Externals { payments: ScriptedGateway::approving(), clock: Arc::new(FixedClock::new(now)) };
    FunctionDeps::from_config(
        &config,
        pool.clone(),
        externals,
        outbox,
        CancellationToken::new(),
        Duration::from_secs(1),
    )
}

/// An order in `status`, last changed `age` before `now`.
async fn order(pool: &PgPool, status: &str, now: DateTime<Utc>, age: Duration) -> i64 {
    let id = crate::helpers::pending_order(pool).await;
    sqlx::query("update orders set status = $2, updated_at = $3 where id = $1")
        .bind(id)
        .bind(status)
        .bind(now - chrono::Duration::from_std(age).unwrap())
        .execute(pool)
        .await
        .unwrap();
    id
}

async fn expired_event_orders(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("select order_id from outbox where event_type = 'OrderExpired' order by order_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn only_processing_orders_older_than_the_ttl_expire_each_with_one_event() {
    let app = app().spawn().await;
    let now = Utc::now();
    let old = TTL + Duration::from_secs(1);
    let stale = [order(&app.pool, "Processing", now, old).await, order(&app.pool, "Processing", now, old * 3).await];
    let untouched = [
        order(&app.pool, "Pending", now, old).await,
        order(&app.pool, "Completed", now, old).await,
        order(&app.pool, "Processing", now, TTL - Duration::from_secs(5)).await,
    ];

    let expired = tick(now, &deps(&app.pool, now), "worker-a").await;

    assert_eq!(expired, TickOutcome::Ran(2));
    for id in stale {
        assert_eq!(crate::helpers::order_status(&app.pool, id).await, "Expired");
    }
    let statuses: Vec<String> =
        futures::future::join_all(untouched.iter().map(|id| crate::helpers::order_status(&app.pool, *id))).await;
    assert_eq!(statuses, ["Pending", "Completed", "Processing"]);
    assert_eq!(expired_event_orders(&app.pool).await, stale.to_vec());
    let payload: serde_json::Value =
        sqlx::query_scalar("select payload::jsonb from outbox where event_type = 'OrderExpired' limit 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let event: shared::events::OrderExpired = serde_json::from_value(payload).unwrap();
    assert_eq!(event.expired_at.map(|t| t.timestamp()), Some(now.timestamp()));
}

#[tokio::test]
async fn two_concurrent_runs_of_one_tick_expire_each_order_once() {
    let app = app().spawn().await;
    let now = Utc::now();
    let mut stale = Vec::new();
    for _ in 0..40 {
        stale.push(order(&app.pool, "Processing", now, TTL * 2).await);
    }
    let scheduled = now - chrono::Duration::seconds(1);
    // Two processes, each with its own dependencies.
    let [mut deps_a, mut deps_b] = [deps(&app.pool, now), deps(&app.pool, now)];
    deps_a.expiry_batch_size = 7;
    deps_b.expiry_batch_size = 7;

    let (a, b) = tokio::join!(tick(scheduled, &deps_a, "worker-a"), tick(scheduled, &deps_b, "worker-b"));

    let results = [a, b];
    assert!(
        results.contains(&TickOutcome::Ran(40)) && results.contains(&TickOutcome::ClaimedElsewhere),
        "one run, one skip: {results:?}"
    );
    assert_eq!(expired_event_orders(&app.pool).await, stale);
    let outcomes: Vec<(String, Option<i64>)> =
        sqlx::query_as("select outcome, affected from cron_runs where job = 'expire_orders' order by outcome")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, [("Done".to_owned(), Some(40)), ("Skipped".to_owned(), Some(0))]);
}

/// A run of `worker`'s tick `scheduled` left Running, its worker's last heartbeat `beat_secs_ago`.
async fn run_under_way(pool: &PgPool, scheduled: DateTime<Utc>, worker: &str, beat_secs_ago: f64) {
    sqlx::query(
        "insert into workers (name, queue, function, process, last_heartbeat)
         values ($1, 'expire_orders', 'expire_orders', 'p', now() - make_interval(secs => $2))",
    )
    .bind(worker)
    .bind(beat_secs_ago)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("insert into cron_runs (job, scheduled_at, worker) values ('expire_orders', $1, $2)")
        .bind(scheduled)
        .bind(worker)
        .execute(pool)
        .await
        .unwrap();
}

/// The error of the skip `worker` recorded for the tick `scheduled`.
async fn skip_reason(pool: &PgPool, scheduled: DateTime<Utc>, worker: &str) -> String {
    sqlx::query_scalar(
        "select error from cron_runs where job = 'expire_orders' and scheduled_at = $1 and worker = $2
         and outcome = 'Skipped'",
    )
    .bind(scheduled)
    .bind(worker)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_tick_is_skipped_while_an_earlier_run_is_under_way_in_this_process_or_on_another_live_one() {
    let app = app().spawn().await;
    let now = Utc::now();
    let stale = order(&app.pool, "Processing", now, TTL * 2).await;
    let deps = deps(&app.pool, now);

    // This process's previous run, still going.
    let running = deps.expiry_run.clone().try_lock_owned().unwrap();
    assert_eq!(tick(now, &deps, "worker-b").await, TickOutcome::PreviousRunUnderWay);
    assert!(skip_reason(&app.pool, now, "worker-b").await.contains("this process's previous run"));
    drop(running);

    // Another process's run of an earlier tick, its worker beating.
    let earlier = now - chrono::Duration::seconds(10);
    run_under_way(&app.pool, earlier, "expire_orders@busy", 1.0).await;
    let next = now + chrono::Duration::seconds(1);
    assert_eq!(tick(next, &deps, "worker-b").await, TickOutcome::PreviousRunUnderWay);
    assert!(skip_reason(&app.pool, next, "worker-b").await.contains("still under way on expire_orders@busy"));
    assert_eq!(crate::helpers::order_status(&app.pool, stale).await, "Processing", "the skipped ticks did nothing");

    // Only later ticks wait: an earlier one goes ahead.
    let before = earlier - chrono::Duration::seconds(10);
    assert_eq!(tick(before, &deps, "worker-c").await, TickOutcome::Ran(1));
    // A run a worker left Running itself (its end went unrecorded) does not hold back its own ticks.
    order(&app.pool, "Processing", now, TTL * 2).await;
    assert_eq!(tick(now + chrono::Duration::seconds(2), &deps, "expire_orders@busy").await, TickOutcome::Ran(1));
    // A run whose worker stopped beating no longer holds back anyone's.
    order(&app.pool, "Processing", now, TTL * 2).await;
    sqlx::query("update workers set last_heartbeat = now() - interval '1 hour' where name = 'expire_orders@busy'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(tick(now + chrono::Duration::seconds(3), &deps, "worker-b").await, TickOutcome::Ran(1));
}

#[tokio::test]
async fn a_later_tick_expires_nothing_twice() {
    let app = app().spawn().await;
    let now = Utc::now();
    order(&app.pool, "Processing", now, TTL * 2).await;
    let deps = deps(&app.pool, now);

    let first = tick(now, &deps, "worker-a").await;
    let second = tick(now + chrono::Duration::minutes(1), &deps, "worker-a").await;

    assert_eq!((first, second), (TickOutcome::Ran(1), TickOutcome::Ran(0)));
    assert_eq!(expired_event_orders(&app.pool).await.len(), 1);
}

#[tokio::test]
async fn a_retry_of_a_run_whose_failure_went_unrecorded_is_not_skipped() {
    let app = app().spawn().await;
    let now = Utc::now();
    let stale = order(&app.pool, "Processing", now, TTL * 2).await;
    let scheduled = now - chrono::Duration::seconds(1);
    // What a run leaves when the database went away mid-run: its claim, still Running.
    sqlx::query("insert into cron_runs (job, scheduled_at, worker) values ('expire_orders', $1, 'worker-a')")
        .bind(scheduled)
        .execute(&app.pool)
        .await
        .unwrap();
    let deps = deps(&app.pool, now);

    let retried = tick(scheduled, &deps, "worker-a").await;
    let other = tick(scheduled, &deps, "worker-b").await;

    assert_eq!(retried, TickOutcome::Ran(1), "the run's own retry expires the stale order");
    assert_eq!(other, TickOutcome::ClaimedElsewhere, "another process still skips the tick");
    assert_eq!(expired_event_orders(&app.pool).await, [stale]);
}

#[tokio::test]
async fn a_tick_that_expires_orders_wakes_the_relay_so_their_events_leave_before_the_next_poll() {
    // Neither the app's relay nor the test's polls again within the test: only a wake-up
    // gets the OrderExpired events out.
    let app = app().config(|c| c.outbox_poll_ms = 60_000).spawn().await;
    let now = Utc::now();
    order(&app.pool, "Processing", now, TTL * 2).await;
    let signal = OutboxSignal::default();
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(
        app.pool.clone(),
        Arc::new(Publisher::new(amqp_url(), app.topology())),
        signal.clone(),
        Arc::new(Metrics::default()),
        RelaySettings { batch_size: 50, poll_interval: Duration::from_secs(60), max_rejections: 10 },
    );
    let relay = tokio::spawn(relay.run(stop.clone()));
    // Its first pass sends the order's OrderCreated; then it waits for a signal or the poll.
    eventually("the relay's first pass", Duration::from_secs(10), || async {
        (unsent(&app.pool).await == 0).then_some(())
    })
    .await;

    assert_eq!(tick(now, &deps_waking(&app.pool, now, signal), "worker-a").await, TickOutcome::Ran(1));

    eventually("the OrderExpired event to leave, long before the next poll", Duration::from_secs(10), || async {
        (unsent(&app.pool).await == 0).then_some(())
    })
    .await;
    stop.cancel();
    relay.await.unwrap();
}

async fn unsent(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where sent_at is null").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_run_whose_batch_fails_is_recorded_as_failed_with_its_error_and_its_retry_claims_the_tick_again() {
    let app = app().spawn().await;
    let now = Utc::now();
    let stale = order(&app.pool, "Processing", now, TTL * 2).await;
    let scheduled = now - chrono::Duration::seconds(1);
    // The outbox refuses OrderExpired rows for now, so the batch's statement fails.
    sqlx::raw_sql("alter table outbox add constraint no_expiry_yet check (event_type <> 'OrderExpired') not valid")
        .execute(&app.pool)
        .await
        .unwrap();
    let deps = deps(&app.pool, now);

    let failed = tokio::time::timeout(TICK_LIMIT, run_tick(scheduled, &deps, "worker-a")).await.unwrap();

    let err = failed.expect_err("the batch's statement was refused");
    assert!(err.to_string().contains("no_expiry_yet"), "{err}");
    let run: (String, Option<i64>, Option<String>) =
        sqlx::query_as("select outcome, affected, error from cron_runs where job = 'expire_orders'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((run.0.as_str(), run.1), ("Failed", Some(0)), "{run:?}");
    assert!(run.2.as_deref().is_some_and(|e| e.contains("no_expiry_yet")), "{run:?}");
    assert_eq!(crate::helpers::order_status(&app.pool, stale).await, "Processing", "the failed batch changed nothing");

    sqlx::raw_sql("alter table outbox drop constraint no_expiry_yet").execute(&app.pool).await.unwrap();
    let retried = tick(scheduled, &deps, "worker-b").await;

    assert_eq!(retried, TickOutcome::Ran(1), "a failed tick may be claimed again, by any process");
    let outcomes: Vec<String> = sqlx::query_scalar("select outcome from cron_runs where job = 'expire_orders'")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(outcomes, ["Done"]);
}
