//! The retention sweep against the real database: orphans marked by heartbeat, dead workers
//! removed, a later report winning over the mark. (The same with real killed processes is in
//! the abuse suite, `tests/abuse/retention.rs`.)

use chrono::Utc;
use shared::{
    db::journal::{self, JournalWrite},
    events::EventType,
    retention::RetentionSettings,
};

use crate::helpers::{spawn_app, sweep};

/// A journal row `Running` on `worker` since `started_secs_ago`.
async fn running_job(pool: &sqlx::PgPool, message_id: &str, worker: &str, started_secs_ago: i32) {
    sqlx::query(
        "insert into job_journal (message_id, queue, function, status, attempts, max_attempts, started_at, worker)
         values ($1, 'q', 'on_order_created', 'Running', 1, 4, now() - make_interval(secs => $2), $3)",
    )
    .bind(message_id)
    .bind(f64::from(started_secs_ago))
    .bind(worker)
    .execute(pool)
    .await
    .unwrap();
}

async fn worker_heard(pool: &sqlx::PgPool, name: &str, secs_ago: i32) {
    sqlx::query(
        "insert into workers (name, queue, function, process, last_heartbeat)
         values ($1, 'q', 'on_order_created', 'p', now() - make_interval(secs => $2))",
    )
    .bind(name)
    .bind(f64::from(secs_ago))
    .execute(pool)
    .await
    .unwrap();
}

async fn status_and_error(pool: &sqlx::PgPool, message_id: &str) -> (String, Option<String>) {
    sqlx::query_as("select status, last_error from job_journal where message_id = $1")
        .bind(message_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_of_a_silent_worker_is_marked_killed_and_a_live_workers_long_job_is_not() {
    let app = spawn_app().await;
    let settings = RetentionSettings::from_config(&app.config);
    let timeout = i32::try_from(settings.orphan_after.as_secs()).unwrap();
    worker_heard(&app.pool, "dead@host-1", timeout + 60).await;
    worker_heard(&app.pool, "live@host-2", 1).await;
    running_job(&app.pool, "orphan", "dead@host-1", timeout + 30).await;
    running_job(&app.pool, "gone-worker", "never-heard@host-3", timeout + 30).await;
    running_job(&app.pool, "long", "live@host-2", timeout * 10).await;
    running_job(&app.pool, "just-started", "dead@host-1", 1).await;

    sweep(&app, settings).await;

    let (status, error) = status_and_error(&app.pool, "orphan").await;
    assert_eq!(status, "Killed");
    assert!(error.as_deref().unwrap().contains("dead@host-1 stopped sending heartbeats"), "{error:?}");
    assert_eq!(status_and_error(&app.pool, "gone-worker").await.0, "Killed");
    assert_eq!(status_and_error(&app.pool, "long").await, ("Running".to_owned(), None));
    assert_eq!(status_and_error(&app.pool, "just-started").await.0, "Running");
}

#[tokio::test]
async fn a_later_report_of_a_job_marked_orphaned_ends_it_in_its_real_state() {
    let app = spawn_app().await;
    let settings = RetentionSettings::from_config(&app.config);
    let timeout = i32::try_from(settings.orphan_after.as_secs()).unwrap();
    running_job(&app.pool, "late", "dead@host-1", timeout + 30).await;
    sweep(&app, settings).await;
    assert_eq!(status_and_error(&app.pool, "late").await.0, "Killed");

    // The writer's report of the job's end (a redelivery's, or the original worker's own).
    let done = JournalWrite {
        message_id: "late",
        queue: "",
        function: "on_order_created",
        args: None,
        status: "Done",
        attempts: 0,
        max_attempts: 4,
        last_error: None,
        result: Some("completed"),
        enqueued_at: None,
        started_at: None,
        finished_at: Some(Utc::now()),
        worker: Some("live@host-2"),
        order_id: None,
        correlation_id: None,
        trace_id: None,
    };
    let mut conn = app.pool.acquire().await.unwrap();
    journal::upsert(&mut conn, &[done]).await.unwrap();

    assert_eq!(status_and_error(&app.pool, "late").await.0, "Done");
}

#[tokio::test]
async fn a_cron_run_of_a_dead_process_is_marked_killed_and_dead_workers_are_removed() {
    let app = spawn_app().await;
    let settings = RetentionSettings::from_config(&app.config);
    let dead_for = i32::try_from(settings.orphan_after.max(settings.dead_workers).as_secs()).unwrap() + 60;
    worker_heard(&app.pool, "expire_orders@dead-1", dead_for).await;
    worker_heard(&app.pool, "expire_orders@live-2", 1).await;
    for (worker, minute) in [("expire_orders@dead-1", 1), ("expire_orders@live-2", 2)] {
        sqlx::query(
            "insert into cron_runs (job, scheduled_at, worker, started_at)
             values ('expire_orders', now() - make_interval(mins => $2), $1, now() - make_interval(secs => $3))",
        )
        .bind(worker)
        .bind(minute)
        .bind(f64::from(dead_for))
        .execute(&app.pool)
        .await
        .unwrap();
    }

    sweep(&app, settings).await;

    let runs: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select worker, outcome, error from cron_runs order by worker")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!((runs[0].0.as_str(), runs[0].1.as_str()), ("expire_orders@dead-1", "Killed"));
    assert!(runs[0].2.as_deref().unwrap().starts_with("orphaned"), "{runs:?}");
    assert_eq!((runs[1].0.as_str(), runs[1].1.as_str()), ("expire_orders@live-2", "Running"));
    let workers: Vec<String> =
        sqlx::query_scalar("select name from workers order by name").fetch_all(&app.pool).await.unwrap();
    assert_eq!(workers, ["expire_orders@live-2"]);
}

#[tokio::test]
async fn a_sweep_skips_while_another_process_holds_the_sweep_lock() {
    let app = spawn_app().await;
    let settings = RetentionSettings::from_config(&app.config);
    let timeout = i32::try_from(settings.orphan_after.as_secs()).unwrap();
    running_job(&app.pool, "orphan", "dead@host-1", timeout + 30).await;
    // Another process's sweep, under way on its own session.
    let mut other = app.pool.acquire().await.unwrap();
    assert!(shared::db::retention::try_lock(&mut other).await.unwrap(), "the lock is free at first");

    sweep(&app, settings).await;
    let while_held = status_and_error(&app.pool, "orphan").await.0;
    other.close().await.unwrap();
    sweep(&app, settings).await;

    assert_eq!(while_held, "Running", "a second sweep ran while the first held the lock");
    assert_eq!(status_and_error(&app.pool, "orphan").await.0, "Killed", "the sweep runs once the lock is free");
}

#[tokio::test]
async fn an_event_published_and_never_started_within_the_retention_is_journaled_killed_on_its_queue() {
    let app = spawn_app().await;
    let settings = RetentionSettings::from_config(&app.config);
    let past_retention = f64::from(u32::try_from(settings.journal.as_secs()).unwrap() + 3600);
    // Published long ago and never consumed; published just now; long ago and handled.
    for (message_id, secs_ago) in [
        ("00000000-0000-7000-8000-000000000001", past_retention),
        ("00000000-0000-7000-8000-000000000002", 1.0),
        ("00000000-0000-7000-8000-000000000003", past_retention),
    ] {
        sqlx::query(
            "insert into outbox (message_id, event_type, order_id, payload, correlation_id, created_at, sent_at)
             values ($1::uuid, 'OrderCreated', 7, '{\"orderId\": 7}', 'req-lost',
                     now() - make_interval(secs => $2), now() - make_interval(secs => $2))",
        )
        .bind(message_id)
        .bind(secs_ago)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "insert into job_journal (message_id, queue, function, status, attempts, max_attempts, finished_at)
         values ('00000000-0000-7000-8000-000000000003', 'q', 'on_order_created', 'Done', 1, 4, now())",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // More than one batch of marks: every one is marked before its outbox row goes.
    sqlx::query(
        "insert into outbox (message_id, event_type, order_id, payload, correlation_id, created_at, sent_at)
         select gen_random_uuid(), 'OrderExpired', i, '{}', 'req-lost', now() - make_interval(secs => $1),
                now() - make_interval(secs => $1)
         from generate_series(1, 6000) i",
    )
    .bind(past_retention)
    .execute(&app.pool)
    .await
    .unwrap();

    sweep(&app, settings).await;

    let lost: (String, String, String, Option<String>, i64) = sqlx::query_as(
        "select queue, function, status, last_error, order_id from job_journal
         where message_id = '00000000-0000-7000-8000-000000000001'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (lost.0, lost.1.as_str(), lost.2.as_str(), lost.4),
        (app.queue(EventType::OrderCreated), "on_order_created", "Killed", 7)
    );
    assert!(lost.3.as_deref().unwrap().contains("never consumed"), "{:?}", lost.3);
    // The mark outlives the outbox row, which the same sweep deleted.
    let outbox: Vec<String> = sqlx::query_scalar("select message_id::text from outbox order by message_id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(outbox, ["00000000-0000-7000-8000-000000000002"]);
    assert_eq!(status_and_error(&app.pool, "00000000-0000-7000-8000-000000000003").await.0, "Done");
    let journaled: i64 = sqlx::query_scalar(
        "select count(*) from job_journal where message_id = '00000000-0000-7000-8000-000000000002'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(journaled, 0, "a message published within the retention is still only waiting");
    let marked_expiries: i64 = sqlx::query_scalar(
        "select count(*) from job_journal where function = 'on_order_expired' and status = 'Killed'
         and last_error like '%never consumed' and queue = $1",
    )
    .bind(app.queue(EventType::OrderExpired))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(marked_expiries, 6000);
}
