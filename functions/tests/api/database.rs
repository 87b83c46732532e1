//! The database layer's own rules (`shared::db`), tested against the real PostgreSQL: which
//! errors are worth retrying, how a database is created and a server waited for, and the
//! statement timeouts a pool and the retention sweep's connection run under.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use shared::db;
use sqlx::{Connection as _, PgConnection, migrate::MigrateDatabase as _};
use uuid::Uuid;

use crate::helpers::{ScratchDatabase, pending_order, postgres_server, spawn_app};

/// The error PostgreSQL returns for a statement that raises SQLSTATE `code`.
async fn error_with_code(conn: &mut PgConnection, code: &str) -> sqlx::Error {
    let statement = format!("do $$ begin raise exception 'test error' using errcode = '{code}'; end $$");
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *conn).await.unwrap_err();
    let reported = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(reported.as_deref(), Some(code), "PostgreSQL did not raise {code}: {err}");
    err
}

#[tokio::test]
async fn a_lost_connection_an_exhausted_server_or_a_serialisation_failure_is_retried_and_a_broken_rule_is_not() {
    let mut conn = PgConnection::connect(&format!("{}/postgres", postgres_server())).await.unwrap();

    // Class 08 connection exceptions, 57P operator intervention, 53 insufficient resources,
    // serialisation failure and deadlock.
    for code in ["08006", "08001", "57P01", "57P03", "53300", "53100", "40001", "40P01"] {
        let err = error_with_code(&mut conn, code).await;
        assert!(db::is_transient(&err), "SQLSTATE {code} should be worth retrying");
    }
    // A unique violation, a syntax error, a division by zero, a raised exception, and the
    // other codes of class 40 (a transaction rollback that is not a conflict).
    for code in ["23505", "42601", "22012", "P0001", "40002", "40003"] {
        let err = error_with_code(&mut conn, code).await;
        assert!(!db::is_transient(&err), "SQLSTATE {code} should not be retried");
    }

    // The connection or the pool, rather than a statement.
    let transient = [
        sqlx::Error::Io(std::io::Error::other("connection reset")),
        sqlx::Error::Tls("handshake failed".into()),
        sqlx::Error::Protocol("unexpected message".into()),
        sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed,
    ];
    for err in &transient {
        assert!(db::is_transient(err), "{err:?} should be worth retrying");
    }
    for err in [sqlx::Error::RowNotFound, sqlx::Error::ColumnNotFound("total".into())] {
        assert!(!db::is_transient(&err), "{err:?} should not be retried");
    }
}

#[tokio::test]
async fn a_violated_constraint_is_named_and_any_other_error_names_none() {
    let mut conn = PgConnection::connect(&format!("{}/postgres", postgres_server())).await.unwrap();
    sqlx::raw_sql("create temporary table t (id int constraint t_id_is_unique unique)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql("insert into t values (1)").execute(&mut conn).await.unwrap();

    let err = sqlx::raw_sql("insert into t values (1)").execute(&mut conn).await.unwrap_err();
    assert_eq!(db::violated_constraint(&err), Some("t_id_is_unique"));

    let err = error_with_code(&mut conn, "22012").await;
    assert_eq!(db::violated_constraint(&err), None);
    assert_eq!(db::violated_constraint(&sqlx::Error::PoolTimedOut), None);
}

#[tokio::test]
async fn a_database_created_before_or_during_an_attempt_counts_as_created_and_nothing_else_does() {
    let mut conn = PgConnection::connect(&format!("{}/postgres", postgres_server())).await.unwrap();

    for code in ["42P04", "23505"] {
        assert!(db::created_meanwhile(&error_with_code(&mut conn, code).await), "SQLSTATE {code}");
    }
    // Insufficient privilege, another duplicate_* code, and an error of the pool.
    for code in ["42501", "42P05"] {
        assert!(!db::created_meanwhile(&error_with_code(&mut conn, code).await), "SQLSTATE {code}");
    }
    assert!(!db::created_meanwhile(&sqlx::Error::PoolTimedOut));
}

#[tokio::test]
async fn callers_racing_to_create_a_missing_database_all_find_it_created() {
    let scratch = ScratchDatabase::new();
    let url = scratch.url();

    // Creating a database takes long enough that several of them pass the existence check
    // before the first has committed: they see 42P04 or 23505 (see the test above).
    let racing: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { db::ensure_database(&url).await })
        })
        .collect();
    for caller in racing {
        caller.await.unwrap().expect("every racing caller should find the database created");
    }

    assert!(sqlx::Postgres::database_exists(&url).await.unwrap(), "{url} was not created");
}

#[tokio::test]
async fn a_database_the_server_refuses_to_create_is_an_error() {
    // A role that may log in but not create databases (created once; a concurrent first run
    // may lose the race in the catalogue's unique index).
    let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_server())).await.unwrap();
    sqlx::raw_sql(
        "do $$ begin create role orderflow_test_cannot_create login nocreatedb password 'cannot-create';
         exception when duplicate_object or unique_violation then null; end $$",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let scratch = ScratchDatabase::new();
    let mut url = reqwest::Url::parse(&scratch.url()).unwrap();
    url.set_username("orderflow_test_cannot_create").unwrap();
    url.set_password(Some("cannot-create")).unwrap();

    let result = db::ensure_database(url.as_str()).await;

    let err = result.expect_err("creating a database without the privilege should fail");
    let code = err.downcast_ref::<sqlx::Error>().and_then(|e| e.as_database_error()).and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("42501"), "insufficient_privilege expected: {err:#}");
    assert!(!sqlx::Postgres::database_exists(&scratch.url()).await.unwrap());
}

#[tokio::test]
async fn an_unreachable_server_is_retried_with_doubling_delays_until_the_patience_runs_out() {
    // A server that accepts connections and closes them at once: every attempt fails, and
    // each one shows up here as an accepted connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        }
    });

    let started = tokio::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        db::connect_and_migrate(
            &format!("postgres://postgres@127.0.0.1:{port}/unreachable"),
            1,
            Duration::from_secs(1),
            Duration::ZERO,
        ),
    )
    .await
    .expect("waiting for an unreachable server should end once its patience runs out");
    let waited = started.elapsed();
    counting.abort();

    assert!(result.is_err(), "an unreachable server cannot be connected to");
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}, before its patience of 1 s ran out");
    // Attempts at 0, 0.2, 0.6 and 1.4 s: the delay doubles from 200 ms.
    let attempts = accepted.load(Ordering::SeqCst);
    assert!((3..=8).contains(&attempts), "{attempts} connection attempts in {waited:?}");
}

#[tokio::test]
async fn ping_answers_only_while_the_database_does() {
    let app = spawn_app().await;
    db::ping(&app.pool).await.expect("the test database answers");

    let unreachable = db::pool("postgres://postgres@127.0.0.1:1/nothing", 1, Duration::ZERO).unwrap();
    assert!(db::ping(&unreachable).await.is_err(), "nothing listens on port 1");
}

#[tokio::test]
async fn a_pool_bounds_every_statement_by_its_timeout_and_zero_sets_none() {
    let app = spawn_app().await;
    let url = &app.config.database_url;

    let bounded = db::pool(url, 1, Duration::from_millis(100)).unwrap();
    let err = sqlx::query("select pg_sleep(0.5)").execute(&bounded).await.unwrap_err();
    let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "the statement should be cancelled: {err}");

    let unbounded = db::pool(url, 1, Duration::ZERO).unwrap();
    let timeout: String = sqlx::query_scalar("show statement_timeout").fetch_one(&unbounded).await.unwrap();
    assert_eq!(timeout, "0", "a zero timeout should leave statements unbounded");
}

#[tokio::test]
async fn the_journal_writes_on_connections_of_its_own_that_commit_without_waiting_for_the_disk() {
    let mut app = crate::helpers::app().with_functions().spawn().await;
    let url = &app.config.database_url.clone();
    let show = async |pool: &sqlx::PgPool, setting: &str| -> String {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("show {setting}"))).fetch_one(pool).await.unwrap()
    };

    let journal = db::journal_pool(url, Duration::from_millis(1500)).unwrap();
    assert_eq!(show(&journal, "synchronous_commit").await, "off");
    assert_eq!(show(&journal, "statement_timeout").await, "1500ms", "the journal keeps the statement bound");
    assert_eq!(show(&journal, "application_name").await, db::JOURNAL_APPLICATION_NAME);
    journal.close().await;

    // The running app's journal writes through such a pool: an order's jobs are written on a
    // connection that names itself as the journal's.
    let token = app.admin_token().await;
    let order: serde_json::Value = app.create_order(&token, &crate::helpers::order_body()).await.json().await.unwrap();
    crate::helpers::eventually("the order's job in the journal", Duration::from_secs(20), || async {
        let jobs: i64 = sqlx::query_scalar("select count(*) from job_journal where order_id = $1")
            .bind(order["id"].as_i64())
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (jobs > 0).then_some(())
    })
    .await;
    let database = url.rsplit('/').next().unwrap();
    let journal_connections: i64 =
        sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1 and application_name = $2")
            .bind(database)
            .bind(db::JOURNAL_APPLICATION_NAME)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        (1..=i64::from(db::JOURNAL_CONNECTIONS)).contains(&journal_connections),
        "{journal_connections} journal connections"
    );

    // A stopped process leaves none of them open.
    app.stop().await;
    let count = || async {
        let (conn, name) = (&mut PgConnection::connect(url).await.unwrap(), db::JOURNAL_APPLICATION_NAME);
        sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_stat_activity where datname = $1 and application_name = $2",
        )
        .bind(database)
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
    };
    crate::helpers::eventually("the journal's connections closed", Duration::from_secs(10), || async {
        (count().await == 0).then_some(())
    })
    .await;
}

#[test]
fn a_process_that_runs_functions_keeps_two_of_its_connections_for_the_journal_and_at_least_one_for_the_rest() {
    assert_eq!(db::main_pool_size(20, true), 18);
    assert_eq!(db::main_pool_size(3, true), 1);
    assert_eq!(db::main_pool_size(2, true), 1);
    assert_eq!(db::main_pool_size(0, true), 1);
    // One that runs none writes no journal.
    assert_eq!(db::main_pool_size(20, false), 20);
    assert_eq!(db::main_pool_size(0, false), 1);
}

#[tokio::test]
async fn a_process_that_runs_no_function_opens_no_journal_connection() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let order: serde_json::Value = app.create_order(&token, &crate::helpers::order_body()).await.json().await.unwrap();
    assert!(order["id"].is_i64(), "{order}");
    let database = app.config.database_url.rsplit('/').next().unwrap().to_owned();
    let connections = async |name: &str| -> i64 {
        sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1 and application_name = $2")
            .bind(&database)
            .bind(name)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    // The API's own connections are there; the journal's are not.
    assert!(connections("orderflow").await >= 1);
    assert_eq!(connections(db::JOURNAL_APPLICATION_NAME).await, 0);
}

#[tokio::test]
async fn the_retention_sweep_replaces_its_connections_statement_timeout() {
    let app = spawn_app().await;
    let bounded = db::pool(&app.config.database_url, 1, Duration::from_millis(100)).unwrap();
    let mut conn = bounded.acquire().await.unwrap();

    db::retention::set_statement_timeout(&mut conn, Duration::from_secs(5)).await.unwrap();

    sqlx::query("select pg_sleep(0.3)")
        .execute(&mut *conn)
        .await
        .expect("the statement runs under the sweep's bound of 5 s, not the pool's 100 ms");
}

#[tokio::test]
async fn the_guarded_start_of_a_payment_tells_a_retry_of_its_own_message_from_a_duplicate() {
    use db::orders::{StartProcessing, mark_processing_if_pending};
    use shared::domain::OrderStatus;
    let app = spawn_app().await;
    let pool = &app.pool;
    let id = pending_order(pool).await;

    let first = mark_processing_if_pending(pool, id, Some("message-a")).await.unwrap();
    let retry = mark_processing_if_pending(pool, id, Some("message-a")).await.unwrap();
    let duplicate = mark_processing_if_pending(pool, id, Some("message-b")).await.unwrap();
    let anonymous = mark_processing_if_pending(pool, id, None).await.unwrap();
    let missing = mark_processing_if_pending(pool, id + 1000, Some("message-a")).await.unwrap();

    assert_eq!(first, StartProcessing::Started);
    assert_eq!(retry, StartProcessing::Resume, "the message that started the payment resumes it");
    assert_eq!(
        duplicate,
        StartProcessing::AlreadyPast(OrderStatus::Processing),
        "another message must not charge again"
    );
    assert_eq!(
        anonymous,
        StartProcessing::AlreadyPast(OrderStatus::Processing),
        "a message without an id resumes nothing"
    );
    assert_eq!(missing, StartProcessing::NotFound);

    // An order without a recorded payment message is never resumed, not even by an anonymous one.
    let unrecorded = pending_order(pool).await;
    assert_eq!(mark_processing_if_pending(pool, unrecorded, None).await.unwrap(), StartProcessing::Started);
    assert_eq!(
        mark_processing_if_pending(pool, unrecorded, None).await.unwrap(),
        StartProcessing::AlreadyPast(OrderStatus::Processing)
    );
}

#[tokio::test]
async fn completing_an_order_writes_its_event_only_while_it_is_processing() {
    let app = spawn_app().await;
    let pool = &app.pool;
    let processing = pending_order(pool).await;
    let expired = pending_order(pool).await;
    sqlx::query(
        "update orders set status = case when id = $1 then 'Processing' else 'Expired' end where id in ($1, $2)",
    )
    .bind(processing)
    .bind(expired)
    .execute(pool)
    .await
    .unwrap();

    let completed = db::orders::complete_with_event(pool, processing, Uuid::now_v7(), "test", (None, None)).await;
    let too_late = db::orders::complete_with_event(pool, expired, Uuid::now_v7(), "test", (None, None)).await;

    assert!(completed.unwrap(), "a Processing order completes");
    assert!(!too_late.unwrap(), "an order that expired meanwhile does not");
    let events: Vec<i64> =
        sqlx::query_scalar("select order_id from outbox where event_type = 'OrderCompleted' order by order_id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(events, [processing]);
    assert_eq!(crate::helpers::order_status(pool, expired).await, "Expired");
}

#[tokio::test]
async fn counting_orders_stops_at_its_cap_and_honours_the_filter() {
    use db::orders::{OrderFilter, count_orders_up_to};
    let app = spawn_app().await;
    let pool = &app.pool;
    for _ in 0..3 {
        pending_order(pool).await;
    }
    let all = OrderFilter::default();
    let of_nobody = OrderFilter { owner: Some(424_242), ..OrderFilter::default() };

    assert_eq!(count_orders_up_to(pool, all, 10).await.unwrap(), 3);
    assert_eq!(count_orders_up_to(pool, all, 2).await.unwrap(), 2, "no further than the cap");
    assert_eq!(count_orders_up_to(pool, of_nobody, 10).await.unwrap(), 0);
}
