//! The job journal and the board's view of it: every attempt recorded, queryable through the
//! board's API (behind the admin's credentials), and an order's timeline.

use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;
use shared::{
    events::EventType,
    payments::{PaymentError, PaymentOutcome},
};
use tokio::sync::Semaphore;

use crate::{
    gateways::ScriptedGateway,
    helpers::{TestApp, app, eventually, order_body},
};

async fn create_order_with_request_id(app: &TestApp, request_id: &str) -> i64 {
    let token = app.admin_token().await;
    let response = app
        .client
        .post(app.url("/api/orders"))
        .bearer_auth(&token)
        .header("x-request-id", request_id)
        .json(&order_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// The journal rows of an order once `done` of them are Done.
async fn done_rows(app: &TestApp, order_id: i64, done: usize) -> Vec<Value> {
    eventually(&format!("{done} Done journal rows of order {order_id}"), Duration::from_secs(15), || async {
        let rows: Vec<Value> = sqlx::query_scalar(
            "select to_jsonb(j) from job_journal j where order_id = $1 and status = 'Done' order by started_at",
        )
        .bind(order_id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        (rows.len() == done).then_some(rows)
    })
    .await
}

#[tokio::test]
async fn a_completed_order_leaves_done_entries_sharing_its_correlation_id() {
    let app = app().with_functions().spawn().await;

    let id = create_order_with_request_id(&app, "req-journal-1").await;

    let rows = done_rows(&app, id, 2).await;
    let functions: Vec<&str> = rows.iter().map(|r| r["function"].as_str().unwrap()).collect();
    assert_eq!(functions, ["on_order_created", "on_order_completed"]);
    for row in &rows {
        assert_eq!(row["correlation_id"], "req-journal-1", "{row}");
        assert_eq!(row["attempts"], 1);
        assert!(row["worker"].as_str().is_some_and(|w| w.starts_with(row["function"].as_str().unwrap())), "{row}");
        assert!(row["started_at"].is_string() && row["finished_at"].is_string(), "{row}");
        assert_eq!(row["args"]["orderId"], id);
    }
    assert_eq!(rows[0]["queue"], app.queue(EventType::OrderCreated));
    assert_eq!(rows[0]["result"], format!("order {id} paid and completed"));
}

#[tokio::test]
async fn a_failing_job_shows_failed_attempts_with_its_error_then_is_killed() {
    // The first attempt fails; the second waits until the test has seen the Failed entry.
    let second_attempt = Arc::new(Semaphore::new(0));
    let gate = second_attempt.clone();
    let gateway = ScriptedGateway::new(|_| Err(PaymentError("card processor down".into())));
    let app = app()
        .with_functions()
        .payments(Arc::new(GatedGateway { inner: gateway.clone(), gate, first_too: false }))
        .config(|c| c.max_retries = 1)
        .spawn()
        .await;
    let id = create_order_with_request_id(&app, "req-journal-2").await;
    let message_id = app.message_id_of(id).await;

    let failed = app.job_in_status(&message_id, "Failed").await;
    assert_eq!(failed["attempts"], 1);
    assert!(failed["last_error"].as_str().unwrap().contains("card processor down"), "{failed}");
    second_attempt.add_permits(1);

    let killed = app.job_in_status(&message_id, "Killed").await;
    assert_eq!(killed["attempts"], 2);
    assert!(killed["last_error"].as_str().unwrap().contains("card processor down"), "{killed}");
    assert_eq!(gateway.calls(), 2);

    // The board shows it too: Killed, among the queue's Killed tasks, with its error.
    let queue = app.queue(EventType::OrderCreated);
    let killed_tasks: Value =
        app.board_get(&format!("/queues/{queue}/tasks?status=Killed")).await.json().await.unwrap();
    assert!(
        killed_tasks.as_array().unwrap().iter().any(|t| t["ctx"]["task_id"] == message_id.as_str()),
        "{killed_tasks}"
    );
    let task: Value = app.board_get(&format!("/queues/{queue}/tasks/{message_id}")).await.json().await.unwrap();
    assert_eq!(task["ctx"]["status"], "Killed", "{task}");
    assert!(task.to_string().contains("card processor down"), "the board does not show the error: {task}");
}

#[tokio::test]
async fn a_payment_under_way_is_running_on_the_board_and_then_done() {
    // The charge waits until the test lets it through: the job is at work meanwhile (it has
    // marked its order Processing), so the journal shows it Running, not Pending.
    let charges = Arc::new(Semaphore::new(0));
    let gateway = ScriptedGateway::new(|_| Ok(PaymentOutcome::Approved));
    let app = app()
        .with_functions()
        .payments(Arc::new(GatedGateway { inner: gateway.clone(), gate: charges.clone(), first_too: true }))
        .spawn()
        .await;
    let id = create_order_with_request_id(&app, "req-journal-running").await;
    let message_id = app.message_id_of(id).await;

    let running = app.job_in_status(&message_id, "Running").await;
    assert_eq!((running["attempts"].as_i64(), running["finished_at"].is_null()), (Some(1), true), "{running}");
    assert_eq!(gateway.calls(), 0, "the charge is still waiting");
    charges.add_permits(1);
    let done = app.job_in_status(&message_id, "Done").await;
    assert_eq!(done["attempts"], 1, "{done}");
}

/// Lets the first charge through at once (unless `first_too`) and each later one only when the
/// test adds a permit.
struct GatedGateway {
    inner: Arc<ScriptedGateway>,
    gate: Arc<Semaphore>,
    first_too: bool,
}

impl shared::payments::PaymentGateway for GatedGateway {
    fn charge(
        &self,
        order_id: i64,
        total: shared::domain::Money,
    ) -> futures::future::BoxFuture<'_, Result<PaymentOutcome, PaymentError>> {
        Box::pin(async move {
            if self.first_too || self.inner.calls() > 0 {
                self.gate.acquire().await.unwrap().forget();
            }
            self.inner.charge(order_id, total).await
        })
    }
}

#[tokio::test]
async fn the_board_api_lists_queues_jobs_workers_and_cron_runs() {
    let app = app().with_functions().config(|c| c.expiry_schedule = "* * * * * *".into()).spawn().await;
    let id = create_order_with_request_id(&app, "req-board").await;
    let rows = done_rows(&app, id, 2).await;
    let message_id = rows[0]["message_id"].as_str().unwrap().to_owned();
    let created_queue = app.queue(EventType::OrderCreated);
    eventually("a cron run in the journal", Duration::from_secs(10), || async {
        let runs: i64 =
            sqlx::query_scalar("select count(*) from job_journal where queue = 'expire_orders' and status = 'Done'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (runs > 0).then_some(())
    })
    .await;

    let queues: Value = app.board_get("/queues").await.json().await.unwrap();
    let names: Vec<&str> = queues.as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    for queue in [
        created_queue.as_str(),
        &app.queue(EventType::OrderCompleted),
        &app.queue(EventType::OrderExpired),
        "expire_orders",
    ] {
        assert!(names.contains(&queue), "{queue} missing from {names:?}");
    }

    let done: Value = app.board_get(&format!("/queues/{created_queue}/tasks?status=Done")).await.json().await.unwrap();
    assert!(done.as_array().unwrap().iter().any(|t| t["ctx"]["task_id"] == message_id.as_str()), "{done}");
    // Its worker's report replaced the published message: listed once, and not as Pending.
    let all: Value = app.board_get(&format!("/queues/{created_queue}/tasks")).await.json().await.unwrap();
    let listed = all.as_array().unwrap().iter().filter(|t| t["ctx"]["task_id"] == message_id.as_str()).count();
    assert_eq!(listed, 1, "{all}");
    let pending: Value =
        app.board_get(&format!("/queues/{created_queue}/tasks?status=Pending")).await.json().await.unwrap();
    assert!(pending.as_array().unwrap().iter().all(|t| t["ctx"]["task_id"] != message_id.as_str()), "{pending}");

    let task: Value = app.board_get(&format!("/queues/{created_queue}/tasks/{message_id}")).await.json().await.unwrap();
    assert_eq!(task["args"]["orderId"], id);
    assert_eq!(task["ctx"]["status"], "Done");

    let cron: Value = app.board_get("/queues/expire_orders/tasks?status=Done").await.json().await.unwrap();
    assert!(cron[0]["args"]["scheduledAt"].is_string(), "{cron}");
    assert!(cron[0]["args"]["outcome"].as_str().is_some_and(|o| o.ends_with("orders expired")), "{cron}");

    let workers: Value = eventually("the workers' heartbeats", Duration::from_secs(20), || async {
        let workers: Value = app.board_get("/workers").await.json().await.unwrap();
        (workers.as_array().unwrap().len() == 4).then_some(workers)
    })
    .await;
    assert!(workers.as_array().unwrap().iter().any(|w| w["queue"] == created_queue.as_str()), "{workers}");

    let overview: Value = app.board_get("/overview").await.json().await.unwrap();
    let done_jobs = overview.as_array().unwrap().iter().find(|s| s["title"] == "DONE_JOBS").unwrap();
    assert!(done_jobs["value"].as_str().unwrap().parse::<i64>().unwrap() >= 2, "{overview}");
}

#[tokio::test]
async fn the_cron_queue_shows_its_schedule_next_run_and_last_finished_run() {
    let app = app().config(|c| c.expiry_schedule = "*/5 * * * * *".into()).spawn().await;
    // A finished run, then another process's skip and a run under way: neither has an outcome.
    sqlx::query(
        "insert into cron_runs (job, scheduled_at, worker, outcome, finished_at, affected) values
         ('expire_orders', now() - interval '20 seconds', 'a', 'Done', now() - interval '19 seconds', 3),
         ('expire_orders', now() - interval '10 seconds', 'b', 'Skipped', now() - interval '10 seconds', 0),
         ('expire_orders', now() - interval '5 seconds', 'a', 'Running', null, null)",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let stats: Value = app.board_get("/queues/expire_orders/stats").await.json().await.unwrap();
    let queues: Value = app.board_get("/queues").await.json().await.unwrap();

    let value = |stats: &Value, title: &str| {
        let stat = stats.as_array().unwrap().iter().find(|s| s["title"] == title);
        stat.map(|s| s["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(value(&stats, "SCHEDULE").as_deref(), Some("*/5 * * * * *"), "{stats}");
    assert!(value(&stats, "NEXT_RUN").unwrap().ends_with(" UTC"), "{stats}");
    assert!(value(&stats, "LAST_RUN").unwrap().starts_with("Done at "), "{stats}");
    assert_eq!(value(&stats, "ORDERS_EXPIRED").as_deref(), Some("3"), "{stats}");
    let listed = |name: &str| queues.as_array().unwrap().iter().find(|q| q["name"] == name).unwrap()["stats"].clone();
    assert_eq!(value(&listed("expire_orders"), "ORDERS_EXPIRED").as_deref(), Some("3"), "{queues}");
    assert_eq!(value(&listed(&app.queue(EventType::OrderCreated)), "SCHEDULE"), None, "{queues}");
}

#[tokio::test]
async fn the_board_refuses_requests_without_the_admin_credentials() {
    let app = app().spawn().await;
    let board = app.board_address.clone().unwrap();

    let anonymous = app.client.get(format!("{board}/api/v1/queues")).send().await.unwrap();
    let wrong = app
        .client
        .get(format!("{board}/api/v1/queues"))
        .basic_auth("admin@example.com", Some("not-the-password"))
        .send()
        .await
        .unwrap();
    let ui = app.client.get(format!("{board}/")).send().await.unwrap();

    for response in [anonymous, wrong, ui] {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    }
    assert_eq!(app.board_get("/queues").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_orders_timeline_tells_its_story_in_order() {
    let app = app().with_functions().spawn().await;
    let id = create_order_with_request_id(&app, "req-timeline").await;
    done_rows(&app, id, 2).await;
    let token = app.admin_token().await;

    let timeline: Value = app.get(&token, &format!("/api/orders/{id}/events")).await.json().await.unwrap();
    let missing = app.get(&token, "/api/orders/999999/events").await;

    let events: Vec<&str> = timeline.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    let position = |event: &str| {
        events.iter().position(|e| *e == event).unwrap_or_else(|| panic!("`{event}` missing from {events:?}"))
    };
    let story = [
        "order created (Pending)",
        "OrderCreated published",
        "on_order_created started (attempt 1)",
        "Pending → Processing",
        "Processing → Completed",
        "OrderCompleted written",
        "on_order_created Done",
        "OrderCompleted published",
        "on_order_completed Done",
    ];
    let positions: Vec<usize> = story.iter().map(|e| position(e)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "out of order: {events:?}");
    assert!(events.contains(&"OrderCompleted notification"), "{events:?}");
    let times: Vec<&str> = timeline.as_array().unwrap().iter().map(|e| e["at"].as_str().unwrap()).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> = times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn finished_journal_entries_past_the_retention_are_pruned() {
    let app = app().spawn().await;
    sqlx::query(
        "insert into job_journal (message_id, queue, function, status, max_attempts, enqueued_at, finished_at) values
         ('old-done', 'q', 'f', 'Done', 1, now() - interval '11 days', now() - interval '10 days'),
         ('new-done', 'q', 'f', 'Done', 1, now(), now()),
         ('old-running', 'q', 'f', 'Running', 1, now() - interval '11 days', null)",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let mut conn = app.pool.acquire().await.unwrap();
    let week_ago = chrono::Utc::now() - chrono::Duration::days(7);
    let pruned = shared::db::retention::prune_once(&mut conn, week_ago, week_ago).await.unwrap();
    drop(conn);

    let left: Vec<String> = sqlx::query_scalar("select message_id from job_journal order by message_id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(left, ["new-done", "old-running"]);
}

#[tokio::test]
async fn pruning_goes_on_batch_after_batch_until_nothing_is_left_and_then_stops() {
    let app = app().spawn().await;
    // One more than a batch (5000 rows per table and statement).
    sqlx::query(
        "insert into job_journal (message_id, queue, function, status, max_attempts, enqueued_at, finished_at)
         select 'old-' || n, 'q', 'f', 'Done', 1, now() - interval '11 days', now() - interval '10 days'
         from generate_series(1, 5001) as n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let week_ago = chrono::Utc::now() - chrono::Duration::days(7);
    let limit = Duration::from_secs(60);

    let pruned = tokio::time::timeout(limit, shared::db::retention::prune_once(&mut conn, week_ago, week_ago)).await;
    let pruned = pruned.expect("pruning never ended");
    let again = tokio::time::timeout(limit, shared::db::retention::prune_once(&mut conn, week_ago, week_ago)).await;
    let again = again.expect("pruning nothing never ended");

    assert_eq!(pruned.unwrap(), 5001);
    assert_eq!(again.unwrap(), 0);
    drop(conn);
    assert_eq!(app.count("job_journal").await, 0);
}

#[tokio::test]
async fn a_task_pushed_from_the_board_goes_through_the_outbox_to_its_function() {
    let app = app().with_functions().spawn().await;
    let id = create_order_with_request_id(&app, "req-board-push").await;
    let rows = done_rows(&app, id, 2).await;
    let completed_queue = app.queue(EventType::OrderCompleted);
    let completed_job = rows.iter().find(|r| r["queue"] == completed_queue.as_str()).unwrap();
    // Lose the notification, as if someone had deleted it, then send the event again from the board.
    sqlx::query("delete from notifications where order_id = $1").bind(id).execute(&app.pool).await.unwrap();
    let task: Value = app
        .board_get(&format!("/queues/{completed_queue}/tasks/{}", completed_job["message_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    let pushed_id = uuid::Uuid::now_v7().to_string();

    let board = app.board_address.as_ref().unwrap();
    let response = app
        .client
        .put(format!("{board}/api/v1/queues/{completed_queue}/tasks"))
        .basic_auth("admin@example.com", Some("admin123"))
        // The board's push: the arguments as the body, the task's id in a header.
        .header("x-task-id", &pushed_id)
        .json(&task["args"])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let handled = app.job_in_status(&pushed_id, "Done").await;
    assert_eq!(handled["function"], "on_order_completed", "{handled}");
    let notified: i64 = sqlx::query_scalar("select count(*) from notifications where order_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(notified, 1, "the pushed event re-created the notification once");
    let via_outbox: i64 = sqlx::query_scalar(
        "select count(*) from outbox where message_id = $1::uuid and correlation_id = 'board' and sent_at is not null",
    )
    .bind(&pushed_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(via_outbox, 1, "the push went out through the outbox");
}

#[tokio::test]
async fn a_published_message_no_function_has_taken_yet_shows_on_the_board_as_pending_without_a_journal_row() {
    // The API role publishes but runs no function: the message waits in its queue.
    let app = app().spawn().await;
    let id = create_order_with_request_id(&app, "req-pending-1").await;
    let message_id = eventually("the order's event published", Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, String>(
            "select message_id::text from outbox where order_id = $1 and sent_at is not null",
        )
        .bind(id)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    })
    .await;
    let queue = app.queue(EventType::OrderCreated);
    let listed =
        |tasks: &Value| tasks.as_array().unwrap().iter().filter(|t| t["ctx"]["task_id"] == message_id.as_str()).count();

    let pending: Value = app.board_get(&format!("/queues/{queue}/tasks?status=Pending")).await.json().await.unwrap();
    assert_eq!(listed(&pending), 1, "{pending}");
    let all: Value = app.board_get("/tasks").await.json().await.unwrap();
    assert_eq!(listed(&all), 1, "{all}");
    let done: Value = app.board_get(&format!("/queues/{queue}/tasks?status=Done")).await.json().await.unwrap();
    assert_eq!(listed(&done), 0, "{done}");
    let elsewhere = app.queue(EventType::OrderCompleted);
    let other: Value = app.board_get(&format!("/queues/{elsewhere}/tasks?status=Pending")).await.json().await.unwrap();
    assert_eq!(listed(&other), 0, "{other}");

    let task: Value = app.board_get(&format!("/queues/{queue}/tasks/{message_id}")).await.json().await.unwrap();
    assert_eq!(task["args"]["orderId"], id, "{task}");
    assert_eq!(task["ctx"]["status"], "Pending", "{task}");
    assert_eq!(task["ctx"]["attempt"], 0, "{task}");
    assert_eq!(task["ctx"]["max_attempts"], app.config.max_retries + 1, "{task}");
    let metadata = &task["ctx"]["metadata"];
    assert_eq!(metadata["correlation_id"], "req-pending-1", "{task}");
    assert_eq!(metadata["order_id"], id.to_string(), "{task}");
    assert_eq!(metadata["function"], "on_order_created", "{task}");
    // Another spelling of the same id, or the wrong queue, names no job.
    let braced = app.board_get(&format!("/queues/{queue}/tasks/{{{message_id}}}")).await;
    assert_ne!(braced.status(), StatusCode::OK);
    let wrong_queue = app.board_get(&format!("/queues/{elsewhere}/tasks/{message_id}")).await;
    assert_ne!(wrong_queue.status(), StatusCode::OK);
    let queues: Value = app.board_get("/queues").await.json().await.unwrap();
    let stats = &queues.as_array().unwrap().iter().find(|q| q["name"] == queue.as_str()).unwrap()["stats"];
    let stat = |title: &str| stats.as_array().unwrap().iter().find(|s| s["title"] == title).unwrap()["value"].clone();
    assert_eq!((stat("TOTAL_JOBS"), stat("PENDING_JOBS")), ("1".into(), "1".into()), "{stats}");

    // Shown from the outbox: the journal holds only what workers report.
    assert_eq!(app.journal_row(&message_id).await, None);
}

#[tokio::test]
async fn the_board_lists_a_queue_known_only_from_its_journal_with_its_counts_and_daily_activity() {
    let app = app().spawn().await;
    // A queue this version does not consume (a function since removed): two jobs published
    // today, one two days ago.
    sqlx::raw_sql(
        "insert into job_journal (message_id, queue, function, status, max_attempts, enqueued_at) values
            ('retired-1', 'retired-queue', 'on_retired', 'Done', 1, now()),
            ('retired-2', 'retired-queue', 'on_retired', 'Done', 1, now()),
            ('retired-3', 'retired-queue', 'on_retired', 'Killed', 1, now() - interval '2 days')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let queues: Value = app.board_get("/queues").await.json().await.unwrap();

    let retired = queues.as_array().unwrap().iter().find(|q| q["name"] == "retired-queue");
    let retired = retired.unwrap_or_else(|| panic!("the journaled queue is missing from {queues}"));
    assert_eq!(retired["activity"], serde_json::json!([0, 0, 0, 0, 1, 0, 2]), "oldest day first: {retired}");
    let stat = |title: &str| {
        retired["stats"].as_array().unwrap().iter().find(|s| s["title"] == title).unwrap()["value"].clone()
    };
    assert_eq!(
        (stat("TOTAL_JOBS"), stat("DONE_JOBS"), stat("KILLED_JOBS")),
        ("3".into(), "2".into(), "1".into()),
        "{retired}"
    );
}

#[tokio::test]
async fn the_journal_writer_gathers_the_reports_that_follow_a_write_for_a_moment_then_writes_them() {
    use shared::journal::{JobStatus, Journal, JournalEntry};

    let app = app().spawn().await;
    let (journal, writer) = Journal::new(app.pool.clone(), Arc::new(shared::metrics::Metrics::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let writing = tokio::spawn(writer.run(stop.clone()));
    let report = |id: &str| {
        let now = chrono::Utc::now();
        journal.record(JournalEntry::Started {
            message_id: id.into(),
            queue: "gathered".into(),
            function: "on_order_created".into(),
            args: "{}".into(),
            order_id: None,
            correlation_id: None,
            trace_id: None,
            worker: "w".into(),
            max_attempts: 4,
            enqueued_at: now,
            at: now,
        });
        journal.record(JournalEntry::Finished {
            message_id: id.into(),
            status: JobStatus::Done,
            error: None,
            result: None,
            at: now,
        });
    };

    // The first finished job is written at once.
    let first_reported = std::time::Instant::now();
    report("gather-first");
    // Polled closely: the check below is conclusive only within the gather.
    while app.journal_row("gather-first").await.is_none() {
        assert!(first_reported.elapsed() < Duration::from_secs(15), "the first job was never written");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // One reported right after that write waits for the gather (100 ms after the write).
    report("gather-second");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let early = app.journal_row("gather-second").await;
    // Only conclusive while the gather cannot have ended yet (a loaded machine may be slower).
    if first_reported.elapsed() < Duration::from_millis(90) {
        assert_eq!(early, None, "written before the gather ended");
    }
    app.job_in_status("gather-second", "Done").await;
    stop.cancel();
    writing.await.unwrap();
}
