//! The per-run environment: a fresh PostgreSQL database and RabbitMQ queue prefix for each run,
//! the counts the scenarios poll, and the clean-up afterwards.

use std::time::{Duration, Instant};

use shared::{db, messaging::Topology};
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

/// The local PostgreSQL server; each run makes its own database on it.
pub const POSTGRES: &str = "postgres://postgres:postgres@127.0.0.1:5432";
/// The local RabbitMQ broker; each run uses its own queue names on it.
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Connections of the baseline's pool and of this benchmark's own: orderflow's default
/// `DB_MAX_CONNECTIONS` (20).
pub const POOL: u32 = 20;

/// A fresh database and queue prefix for one run.
pub struct Env {
    database: String,
    /// A pool on the run's database.
    pub pool: PgPool,
    /// The run's queue names.
    pub topology: Topology,
}

impl Env {
    /// Creates and migrates a database named after `tag`, with a queue prefix of its own.
    pub async fn new(tag: &str) -> Env {
        let id = Uuid::new_v4().simple().to_string();
        let database = format!("orderflow_bench_{tag}_{}", &id[..8]);
        let url = format!("{POSTGRES}/{database}");
        let pool = db::connect_and_migrate(&url, POOL, Duration::from_secs(10), Duration::ZERO).await.unwrap();
        Env {
            database,
            pool,
            topology: Topology::new(format!("bench-{}-", &id[..8]), shared::config::QueueType::Classic),
        }
    }

    /// The run's database URL.
    pub fn url(&self) -> String {
        format!("{POSTGRES}/{}", self.database)
    }

    /// The run's queue prefix, as orderflow's `QUEUE_PREFIX` takes it.
    pub fn queue_prefix(&self) -> String {
        self.topology.queue(shared::events::EventType::OrderCreated).replace("order-created-event", "")
    }

    /// Drops the database and deletes the queues, unless `BENCH_KEEP` is set.
    pub async fn drop(self) {
        if std::env::var_os("BENCH_KEEP").is_some() {
            eprintln!("  kept database {}", self.database);
            return;
        }
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                r#"drop database if exists "{}" with (force)"#,
                self.database
            )))
            .execute(&mut admin)
            .await;
        }
        if let Ok(connection) = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default()).await
            && let Ok(channel) = connection.create_channel().await
        {
            for queue in self.topology.all_queues() {
                let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
            }
            let _ =
                channel.exchange_delete(self.topology.dead_letter_exchange().as_str().into(), Default::default()).await;
        }
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// Polls `sql` until it returns at least `n`; returns when that happened.
    pub async fn wait_for(&self, sql: &'static str, n: i64, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count(sql).await >= n {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "timed out waiting for `{sql}` to reach {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// p50 and p99, in milliseconds, of `created_at` of the order to `created_at` of its notification.
    pub async fn notification_latency(&self) -> (f64, f64) {
        let row: (f64, f64) = sqlx::query_as(
            "select percentile_cont(0.5) within group (order by lat), percentile_cont(0.99) within group (order by lat)
             from (select extract(epoch from n.created_at - o.created_at) * 1000 as lat
                   from notifications n join orders o on o.id = n.order_id) as l",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        row
    }
}
