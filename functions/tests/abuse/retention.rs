//! Abuse cases for the tables that only grew (issue 17, item 6) and the listing of orders
//! (item 7): a worker SIGKILLed mid-payment leaves its job, a killed process its cron run, and
//! both are marked Killed after the (short, test-set) orphan timeout while a live worker's long
//! job is not; a dead worker's row goes; expired idempotency keys are pruned and no longer
//! replay; absurd pages answer 400 and a deep page answers correctly.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cluster::Cluster;

/// The sweep runs every second and takes a worker silent for 15 s as dead (the shortest
/// ORPHAN_TIMEOUT_SECS allows: three heartbeats).
const FAST_RETENTION: [(&str, &str); 3] =
    [("RETENTION_INTERVAL_SECS", "1"), ("ORPHAN_TIMEOUT_SECS", "15"), ("DEAD_WORKER_RETENTION_SECS", "15")];

/// The journal row of the order's `OrderCreated` job: status, worker, last error.
async fn payment_job(cluster: &Cluster, order_id: i64) -> Option<(String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "select status, worker, last_error from job_journal where order_id = $1 and function = 'on_order_created'",
    )
    .bind(order_id)
    .fetch_optional(&cluster.pool)
    .await
    .unwrap()
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn a_worker_killed_mid_payment_leaves_its_job_and_cron_run_marked_killed_but_a_live_long_job_finishes() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    tokio::time::timeout(Duration::from_secs(240), async {
        let mut cluster = Cluster::new("retention-orphans", &FAST_RETENTION).await;
        cluster.start("api").await;
        // A payment that never ends before the kill.
        let doomed = cluster.spawn("worker", &[("PAYMENT_DELAY_MS", "600000")]);
        cluster.wait_ready(doomed, Duration::from_secs(60)).await;
        let order = cluster.create_orders(1).await[0];
        cluster
            .until("the payment to be journaled Running", Duration::from_secs(30), async || {
                payment_job(&cluster, order).await.is_some_and(|(status, _, _)| status == "Running")
            })
            .await;
        let (_, worker, _) = payment_job(&cluster, order).await.unwrap();
        let worker = worker.unwrap();
        let process = worker.split_once('@').unwrap().1.to_owned();
        // What a process killed during an expiry run leaves: its run Running, under its name.
        let cron_worker = format!("expire_orders@{process}");
        sqlx::query(
            "insert into cron_runs (job, scheduled_at, worker) values ('expire_orders', now() - interval '1 day', $1)",
        )
        .bind(&cron_worker)
        .execute(&cluster.pool)
        .await
        .unwrap();

        cluster.kill(doomed).await;

        cluster
            .until("the orphaned payment to be marked Killed", Duration::from_secs(60), async || {
                payment_job(&cluster, order).await.is_some_and(|(status, _, _)| status == "Killed")
            })
            .await;
        let (_, _, reason) = payment_job(&cluster, order).await.unwrap();
        let reason = reason.unwrap();
        assert!(reason.contains(&worker) && reason.contains("stopped sending heartbeats"), "{reason}");
        cluster
            .until("the orphaned cron run to be marked Killed", Duration::from_secs(30), async || {
                cluster
                    .scalar("select count(*) from cron_runs where outcome = 'Killed' and error like 'orphaned%'")
                    .await
                    == 1
            })
            .await;
        cluster
            .until("the dead worker's rows to be removed", Duration::from_secs(60), async || {
                let left: i64 = sqlx::query_scalar("select count(*) from workers where process = $1")
                    .bind(&process)
                    .fetch_one(&cluster.pool)
                    .await
                    .unwrap();
                left == 0
            })
            .await;

        // The payment is redelivered to a live worker whose payment outlasts the orphan
        // timeout: it is never marked, and ends in its real state.
        let live = cluster.spawn("worker", &[("PAYMENT_DELAY_MS", "25000")]);
        cluster.wait_ready(live, Duration::from_secs(60)).await;
        let mut started_again = false;
        cluster
            .until(
                "the redelivered payment to finish Done, never marked meanwhile",
                Duration::from_secs(120),
                async || {
                    let (status, worker, error) = payment_job(&cluster, order).await.unwrap();
                    if status == "Running" {
                        assert!(
                            worker.is_some_and(|w| !w.ends_with(&format!("@{process}"))),
                            "still the dead worker's"
                        );
                        started_again = true;
                    }
                    // Killed is the mark from before; once the live worker started it, never again.
                    assert!(!(started_again && status == "Killed"), "a live worker's job was marked: {error:?}");
                    status == "Done"
                },
            )
            .await;
        assert!(started_again, "the redelivery was never seen Running, so the case proved less than it says");
        cluster
            .until("the order to complete", Duration::from_secs(30), async || {
                let status = cluster.status_of(order).await;
                status == "Completed"
            })
            .await;
    })
    .await
    .expect("the case took longer than its bound");
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn a_live_workers_long_payment_is_never_marked_orphaned() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    tokio::time::timeout(Duration::from_secs(180), async {
        let mut cluster = Cluster::new("retention-live-long-job", &FAST_RETENTION).await;
        cluster.start("api").await;
        // Twice the orphan timeout, plus many sweeps.
        let worker = cluster.spawn("worker", &[("PAYMENT_DELAY_MS", "40000")]);
        cluster.wait_ready(worker, Duration::from_secs(60)).await;
        let order = cluster.create_orders(1).await[0];
        let mut seen_running = false;
        cluster
            .until("the long payment to finish", Duration::from_secs(120), async || {
                match payment_job(&cluster, order).await {
                    Some((status, _, error)) => {
                        assert_ne!(status, "Killed", "a live worker's job was marked: {error:?}");
                        seen_running |= status == "Running";
                        status == "Done"
                    }
                    None => false,
                }
            })
            .await;
        assert!(seen_running, "the job was never seen Running, so the case proved nothing");
    })
    .await
    .expect("the case took longer than its bound");
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn idempotency_keys_older_than_their_ttl_are_pruned_and_no_longer_replay() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut cluster = Cluster::new("retention-idempotency", &FAST_RETENTION).await;
        let api = cluster.start("api").await;
        let token = cluster.token().await;
        let (client, url) = (reqwest::Client::new(), cluster.processes[api].http.clone());
        let create = async |key: &str| {
            client
                .post(format!("{url}/api/orders"))
                .bearer_auth(&token)
                .header("idempotency-key", key)
                .json(&json!({ "userId": 1, "productId": 2, "quantity": 1, "price": 10 }))
                .send()
                .await
                .unwrap()
        };
        let first: Value = create("retry-me").await.json().await.unwrap();
        let replay = create("retry-me").await;
        assert_eq!(replay.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
        // A day and an hour later (IDEMPOTENCY_TTL_HOURS is 24).
        sqlx::query("update idempotency_keys set created_at = now() - interval '25 hours'")
            .execute(&cluster.pool)
            .await
            .unwrap();

        cluster
            .until("the expired key to be pruned", Duration::from_secs(30), async || {
                cluster.scalar("select count(*) from idempotency_keys").await == 0
            })
            .await;
        let after = create("retry-me").await;

        assert_eq!(after.status(), StatusCode::CREATED);
        assert!(after.headers().get("idempotent-replayed").is_none());
        let after: Value = after.json().await.unwrap();
        assert_ne!(after["id"], first["id"]);
        assert_eq!(cluster.scalar("select count(*) from orders").await, 2);
    })
    .await
    .expect("the case took longer than its bound");
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn absurd_pages_answer_400_and_a_deep_page_answers_correctly() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut cluster = Cluster::new("retention-deep-pages", &[]).await;
        let api = cluster.start("api").await;
        // More orders than `page` may reach or `total` counts (10,000 each).
        sqlx::query(
            "insert into orders (user_id, product_id, quantity, price, total, status)
             select 1, 1, 1, 1, 1, 'Completed' from generate_series(1, 12000)",
        )
        .execute(&cluster.pool)
        .await
        .unwrap();
        let token = cluster.token().await;
        let (client, url) = (reqwest::Client::new(), cluster.processes[api].http.clone());
        let get = async |query: &str| {
            let response = client.get(format!("{url}/api/orders?{query}")).bearer_auth(&token).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        };

        for (query, field) in [
            ("page=9223372036854775807", "page"),
            ("page=100000&pageSize=100", "page"),
            ("pageSize=1000000", "pageSize"),
            ("pageSize=-1", "pageSize"),
            ("after=-5", "after"),
        ] {
            let (status, body) = get(query).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            assert_eq!(body["error"]["field"], field, "{query}: {body}");
        }

        let (max_id, min_id): (i64, i64) =
            sqlx::query_as("select max(id), min(id) from orders").fetch_one(&cluster.pool).await.unwrap();
        // The deepest page `page` reaches, and one past it through the cursor.
        let (status, deepest) = get("page=101&pageSize=100").await;
        assert_eq!(status, StatusCode::OK, "{deepest}");
        assert_eq!(deepest["items"][0]["id"], max_id - 10_000);
        assert_eq!((deepest["total"].as_i64(), deepest["totalCapped"].as_bool()), (Some(10_000), Some(true)));
        let (status, near_the_end) = get(&format!("pageSize=100&after={}", min_id + 3)).await;
        assert_eq!(status, StatusCode::OK, "{near_the_end}");
        let ids: Vec<i64> =
            near_the_end["items"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [min_id + 2, min_id + 1, min_id]);
        assert_eq!(near_the_end["nextAfter"], Value::Null);
    })
    .await
    .expect("the case took longer than its bound");
}
