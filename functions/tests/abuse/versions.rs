//! Messages across versions: during a rolling upgrade a worker reads events a newer (or older,
//! or foreign) producer wrote. It ignores fields it does not know, fills optional fields it
//! does not find, and dead-letters a message of a newer schema version with that reason,
//! changing nothing, rather than half-apply it.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};
use shared::events::{EventType, SCHEMA_VERSION, SCHEMA_VERSION_HEADER};

use crate::cluster::Cluster;

/// Publishes `body` to `queue` (persistent, confirmed), with schema version `version` when
/// given and without the header otherwise.
async fn publish(cluster: &Cluster, queue: &str, body: &str, message_id: &str, version: Option<u32>) {
    let mut headers = FieldTable::default();
    if let Some(version) = version {
        headers.insert(SCHEMA_VERSION_HEADER.into(), AMQPValue::LongLongInt(i64::from(version)));
    }
    cluster.publish_with_headers(queue, body.as_bytes(), message_id, headers).await;
}

/// Inserts one order in `status` and returns its id.
async fn order(cluster: &Cluster, status: &str) -> i64 {
    sqlx::query_scalar(
        "insert into orders (user_id, product_id, quantity, price, total, status)
         values (1, 1, 2, 5.00, 10.00, $1) returning id",
    )
    .bind(status)
    .fetch_one(&cluster.pool)
    .await
    .unwrap()
}

async fn count(cluster: &Cluster, sql: &'static str, id: i64) -> i64 {
    sqlx::query_scalar(sql).bind(id).fetch_one(&cluster.pool).await.unwrap()
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn an_event_with_an_extra_field_and_one_without_an_optional_field_are_both_processed() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let case = async {
        // Arrange.
        let mut cluster = Cluster::new("versions_tolerant", &[("PAYMENT_DELAY_MS", "100")]).await;
        cluster.start("all").await;
        let created = order(&cluster, "Pending").await;
        let expired = order(&cluster, "Expired").await;

        // Act: a newer producer's OrderCreated with a field this build does not know (and the
        // current version), and an older producer's OrderExpired without `expiredAt` (and no
        // version header at all).
        let body = format!(
            r#"{{"orderId":{created},"userId":1,"productId":1,"total":10.00,"currency":"EUR","coupon":{{"code":"X"}}}}"#
        );
        publish(
            &cluster,
            &cluster.topology.queue(EventType::OrderCreated),
            &body,
            "versions-extra",
            Some(SCHEMA_VERSION),
        )
        .await;
        let body = format!(r#"{{"orderId":{expired},"userId":1}}"#);
        publish(&cluster, &cluster.topology.queue(EventType::OrderExpired), &body, "versions-missing", None).await;

        // Assert: the order completed with one notification; the expiry recorded once.
        cluster
            .until("both events to be processed", Duration::from_secs(60), async || {
                count(&cluster, "select count(*) from notifications where order_id = $1", created).await == 1
                    && count(&cluster, "select count(*) from notifications where order_id = $1", expired).await == 1
            })
            .await;
        cluster.settle(Duration::from_secs(60), false).await;
        let status = cluster.status_of(created).await;
        assert_eq!(status, "Completed");
        assert_eq!(
            count(
                &cluster,
                "select count(*) from notifications where order_id = $1 and type = 'OrderCompleted'",
                created
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &cluster,
                "select count(*) from notifications where order_id = $1 and type = 'OrderExpired'",
                expired
            )
            .await,
            1
        );
        cluster.check_invariants().await;
    };
    tokio::time::timeout(Duration::from_secs(240), case).await.expect("the case took longer than 4 minutes");
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn an_event_of_a_newer_schema_version_is_dead_lettered_with_the_reason_and_changes_nothing() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let case = async {
        // Arrange.
        let mut cluster = Cluster::new("versions_newer", &[("PAYMENT_DELAY_MS", "100")]).await;
        cluster.start("all").await;
        let id = order(&cluster, "Pending").await;

        // Act: an OrderCreated that decodes fine, but from a newer major version.
        let body = format!(r#"{{"orderId":{id},"userId":1,"productId":1,"total":10.00}}"#);
        publish(
            &cluster,
            &cluster.topology.queue(EventType::OrderCreated),
            &body,
            "versions-newer",
            Some(SCHEMA_VERSION + 1),
        )
        .await;

        // Assert: in the error queue, journaled with the reason; the order untouched.
        let error_queue = cluster.topology.error_queue(EventType::OrderCreated);
        cluster
            .until("the message to be dead-lettered", Duration::from_secs(60), async || {
                cluster.depth(&error_queue).await == 1
            })
            .await;
        let reason = format!("schema version {} is newer", SCHEMA_VERSION + 1);
        cluster
            .until("the reason to be journaled", Duration::from_secs(30), async || {
                let errors: Vec<Option<String>> =
                    sqlx::query_scalar("select last_error from job_journal where message_id = 'versions-newer'")
                        .fetch_all(&cluster.pool)
                        .await
                        .unwrap();
                errors.iter().flatten().any(|e| e.contains(&reason))
            })
            .await;
        let status = cluster.status_of(id).await;
        assert_eq!(status, "Pending", "a message of a newer version was (half-)applied");
        assert_eq!(count(&cluster, "select count(*) from notifications where order_id = $1", id).await, 0);
        assert_eq!(count(&cluster, "select count(*) from outbox where order_id = $1", id).await, 0);
        assert_eq!(cluster.depth(&cluster.topology.queue(EventType::OrderCreated)).await, 0);
    };
    tokio::time::timeout(Duration::from_secs(240), case).await.expect("the case took longer than 4 minutes");
}
