//! `cargo bench -p orderflow --bench pipeline`: how fast, how many at once, how much memory.
//!
//! Against the real PostgreSQL and RabbitMQ, each scenario runs twice in this one process, each
//! run on its own database and queue names: once with orderflow started in-process (HTTP, apalis
//! workers, journal, relay: the product), once with the baseline (`baseline.rs`: the same work by
//! hand with sqlx and lapin). Results are ratios measured side by side; nothing here asserts a
//! speed. Scale with `BENCH_SCALE` (default 1.0; 0.1 for a quick look).

mod baseline;

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use orderflow::app::{Application, Externals, Role};
use serde_json::{Value, json};
use shared::{
    Config,
    db::{self, orders},
    domain::NewOrder,
    messaging::Topology,
};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const POSTGRES: &str = "postgres://postgres:postgres@127.0.0.1:5432";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const CONCURRENCY: usize = 64;
const POOL: u32 = 20;

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(10)
}

// ---------------------------------------------------------------------------------------------
// Environment: a fresh database and queue prefix per run.

struct Env {
    database: String,
    pool: PgPool,
    topology: Topology,
}

impl Env {
    async fn new(tag: &str) -> Env {
        let id = Uuid::new_v4().simple().to_string();
        let database = format!("orderflow_bench_{tag}_{}", &id[..8]);
        let url = format!("{POSTGRES}/{database}");
        let pool = db::connect_and_migrate(&url, POOL, Duration::from_secs(10)).await.unwrap();
        Env {
            database,
            pool,
            topology: Topology::new(format!("bench-{}-", &id[..8]), shared::config::QueueType::Classic),
        }
    }

    fn url(&self) -> String {
        format!("{POSTGRES}/{}", self.database)
    }

    async fn drop(self) {
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
    async fn wait_for(&self, sql: &'static str, n: i64, timeout: Duration) -> Instant {
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
    async fn notification_latency(&self) -> (f64, f64) {
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

// ---------------------------------------------------------------------------------------------
// orderflow in-process.

struct Orderflow {
    shutdown: CancellationToken,
    run: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: String,
    client: reqwest::Client,
    token: String,
}

async fn start_orderflow(env: &Env, role: Role, tweak: impl FnOnce(&mut Config)) -> Orderflow {
    let mut config = Config::from_env();
    config.database_url = env.url();
    config.amqp_url = AMQP.into();
    config.queue_prefix =
        env.topology.queue(shared::events::EventType::OrderCreated).replace("order-created-event", "");
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.board_addr = "127.0.0.1:0".parse().unwrap();
    config.db_max_connections = POOL;
    config.payment_delay_ms = 0;
    config.payment_success_rate = 1.0;
    tweak(&mut config);
    let externals = Externals::from_config(&config);
    let app = Application::build_with(config, role, externals).await.unwrap();
    let http = format!("http://{}", app.http_addr());
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(app.run(shutdown.clone()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = if std::env::var_os("BENCH_CREATE_NO_BROKER").is_some() { "live" } else { "ready" };
    while !client.get(format!("{http}/health/{probe}")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "orderflow did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let login: Value = client
        .post(format!("{http}/api/auth/login"))
        .json(&json!({ "email": "admin@example.com", "password": "admin123" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    Orderflow { shutdown, run, http, client, token }
}

impl Orderflow {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(40), self.run).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Load.

/// What a burst of creates measured.
struct Creates {
    started: Instant,
    finished: Instant,
    latencies_ms: Vec<f64>,
}

impl Creates {
    fn per_second(&self) -> f64 {
        self.latencies_ms.len() as f64 / (self.finished - self.started).as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }
}

/// `n` orders created by `CONCURRENCY` concurrent callers of `create`.
async fn create_many<F, Fut>(n: usize, create: F) -> Creates
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, create) = (next.clone(), create.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let at = Instant::now();
                    create().await;
                    latencies.push(at.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies_ms = Vec::with_capacity(n);
    for caller in callers {
        latencies_ms.extend(caller.await.unwrap());
    }
    Creates { started, finished: Instant::now(), latencies_ms }
}

fn order_body() -> Value {
    json!({ "userId": 1, "productId": 2, "quantity": 2, "price": 10.5 })
}

async fn http_creates(orderflow: &Orderflow, n: usize) -> Creates {
    let (client, url, token) =
        (orderflow.client.clone(), format!("{}/api/orders", orderflow.http), orderflow.token.clone());
    create_many(n, move || {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let response = client.post(&url).bearer_auth(&token).json(&order_body()).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201);
        }
    })
    .await
}

async fn direct_creates(pool: &PgPool, n: usize, wake: Option<Arc<tokio::sync::Notify>>) -> Creates {
    let pool = pool.clone();
    create_many(n, move || {
        let (pool, wake) = (pool.clone(), wake.clone());
        async move {
            let order = NewOrder::parse(1, 2, 2, "10.5".parse().unwrap(), None).unwrap();
            orders::insert_order(&pool, &order, Uuid::now_v7(), "bench", None).await.unwrap();
            if let Some(wake) = wake {
                wake.notify_one();
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Memory.

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Samples the process's RSS every 20 ms until stopped; returns the peak.
struct PeakRss {
    peak_kib: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl PeakRss {
    fn start() -> PeakRss {
        let (peak_kib, stop) = (Arc::new(AtomicU64::new(0)), CancellationToken::new());
        let (peak, token) = (peak_kib.clone(), stop.clone());
        tokio::spawn(async move {
            while !token.is_cancelled() {
                peak.fetch_max((rss_mib() * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        PeakRss { peak_kib, stop }
    }

    fn stop(self) -> f64 {
        self.stop.cancel();
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

struct Row {
    scenario: &'static str,
    metric: String,
    orderflow: f64,
    baseline: Option<f64>,
    /// Whether more is better (throughput) or less (time, memory); picks the best of repeats.
    more_is_better: bool,
    rule: Rule,
}

/// A target.
#[derive(Clone, Copy)]
enum Rule {
    /// For information only.
    None,
    /// orderflow ≥ x × baseline.
    RatioAtLeast(f64),
    /// orderflow ≤ x × baseline.
    RatioAtMost(f64),
    /// orderflow < x (absolute).
    Below(f64, &'static str),
}

impl Row {
    fn target(&self) -> String {
        match self.rule {
            Rule::None => "-".into(),
            Rule::RatioAtLeast(x) => format!("≥ {x} × baseline"),
            Rule::RatioAtMost(x) => format!("≤ {x} × baseline"),
            Rule::Below(x, unit) => format!("< {x} {unit}"),
        }
    }

    fn pass(&self) -> Option<bool> {
        match (self.rule, self.baseline) {
            (Rule::None, _) => None,
            (Rule::RatioAtLeast(x), Some(b)) => Some(self.orderflow >= x * b),
            (Rule::RatioAtMost(x), Some(b)) => Some(self.orderflow <= x * b),
            (Rule::Below(x, _), _) => Some(self.orderflow < x),
            _ => None,
        }
    }
}

/// Runs a scenario `repeats` times and keeps each side's best.
async fn repeated(name: &str, repeats: usize, scenario: impl AsyncFn(&mut Vec<Row>)) -> Vec<Row> {
    let mut runs = Vec::new();
    for run in 1..=repeats {
        eprintln!("scenario {name} (run {run} of {repeats})");
        let mut rows = Vec::new();
        scenario(&mut rows).await;
        runs.push(rows);
    }
    best_of(runs)
}

/// The best value of each side over repeated runs of one scenario.
fn best_of(runs: Vec<Vec<Row>>) -> Vec<Row> {
    let mut runs = runs.into_iter();
    let mut best = runs.next().unwrap_or_default();
    for run in runs {
        for (kept, row) in best.iter_mut().zip(run) {
            let better = |a: f64, b: f64| if kept.more_is_better { a.max(b) } else { a.min(b) };
            kept.orderflow = better(kept.orderflow, row.orderflow);
            kept.baseline = kept.baseline.zip(row.baseline).map(|(a, b)| better(a, b));
        }
    }
    best
}

fn ratio(row: &Row) -> Option<f64> {
    row.baseline.map(|b| row.orderflow / b)
}

fn print_table(rows: &[Row], total: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | metric | orderflow | baseline | orderflow ÷ baseline | target | met |\n|---|---|---:|---:|---:|---|---|"
    );
    for row in rows {
        let value = |v: f64| if v < 10.0 { format!("{v:.2}") } else { format!("{v:.1}") };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.metric,
            value(row.orderflow),
            row.baseline.map_or_else(|| "-".into(), value),
            ratio(row).map_or_else(|| "-".into(), |r| format!("{r:.2}")),
            row.target(),
            match row.pass() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
    let _ = writeln!(out, "\nTotal benchmark time: {:.0} s", total.as_secs_f64());
    out
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

/// One side of the in-flight scenario: seconds from the last create until every order is
/// Completed, and the process's peak RSS. Runs in a child process of its own (see `main`), so
/// each side's memory is measured on a fresh process.
async fn in_flight_side(side: &str) -> (f64, f64) {
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
fn in_flight(rows: &mut Vec<Row>) {
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

/// 1. Create throughput.
async fn create_throughput(rows: &mut Vec<Row>) {
    let n = scaled(20_000);

    // As the issue specifies it: the insert alone, nothing published.
    let env = Env::new("create_base").await;
    let base = direct_creates(&env.pool, n, None).await;
    env.drop().await;

    // The same inserts while a relay publishes them, as orderflow's API process does.
    let env = Env::new("create_base_relay").await;
    let relay = baseline::Baseline::start_relay_only(env.pool.clone(), AMQP, env.topology.clone()).await;
    let base_publishing = direct_creates(&env.pool, n, Some(relay.wake.clone())).await;
    relay.stop().await;
    env.drop().await;

    let env = Env::new("create_of").await;
    let orderflow = start_orderflow(&env, Role::Api, |c| {
        if std::env::var_os("BENCH_CREATE_NO_BROKER").is_some() {
            c.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
        }
    })
    .await;
    let of = http_creates(&orderflow, n).await;
    orderflow.stop().await;
    env.drop().await;

    let (of_rate, base_rate) = (of.per_second(), base.per_second());
    rows.push(Row {
        scenario: "1 create",
        metric: format!("creates/s ({n} POSTs at {CONCURRENCY} concurrent; baseline: the insert alone)"),
        orderflow: of_rate,
        baseline: Some(base_rate),
        more_is_better: true,
        rule: Rule::RatioAtLeast(0.8),
    });
    rows.push(Row {
        scenario: "1 create",
        metric: "creates/s (baseline: the insert while its relay publishes)".into(),
        orderflow: of_rate,
        baseline: Some(base_publishing.per_second()),
        more_is_better: true,
        rule: Rule::None,
    });
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        rows.push(Row {
            scenario: "1 create",
            metric: format!("{name} latency, ms (baseline: the insert alone)"),
            orderflow: of.percentile(p),
            baseline: Some(base.percentile(p)),
            more_is_better: false,
            rule: Rule::None,
        });
    }
}

/// 2. Pipeline throughput.
async fn pipeline(rows: &mut Vec<Row>) {
    let n = scaled(20_000);
    let notified = "select count(*) from notifications";

    let env = Env::new("pipeline_base").await;
    let base = baseline::Baseline::start(env.pool.clone(), AMQP, env.topology.clone(), Duration::ZERO, 10_000).await;
    let creates = direct_creates(&env.pool, n, Some(base.wake.clone())).await;
    let done = env.wait_for(notified, n as i64, Duration::from_secs(300)).await;
    let base_rate = n as f64 / (done - creates.started).as_secs_f64();
    let base_create_s = (creates.finished - creates.started).as_secs_f64();
    let base_latency = env.notification_latency().await;
    base.stop().await;
    env.drop().await;

    let env = Env::new("pipeline_of").await;
    let orderflow = start_orderflow(&env, Role::All, |_| {}).await;
    let creates = http_creates(&orderflow, n).await;
    let done = env.wait_for(notified, n as i64, Duration::from_secs(300)).await;
    let of_rate = n as f64 / (done - creates.started).as_secs_f64();
    let of_create_s = (creates.finished - creates.started).as_secs_f64();
    let of_latency = env.notification_latency().await;
    orderflow.stop().await;
    env.drop().await;

    rows.push(Row {
        scenario: "2 pipeline",
        metric: format!("orders/s, first create to last notification ({n})"),
        orderflow: of_rate,
        baseline: Some(base_rate),
        more_is_better: true,
        rule: Rule::RatioAtLeast(0.7),
    });
    rows.push(Row {
        scenario: "2 pipeline",
        metric: "create phase, s".into(),
        orderflow: of_create_s,
        baseline: Some(base_create_s),
        more_is_better: false,
        rule: Rule::None,
    });
    for (name, of, base) in [("p50", of_latency.0, base_latency.0), ("p99", of_latency.1, base_latency.1)] {
        rows.push(Row {
            scenario: "2 pipeline",
            metric: format!("{name} create→notification, ms (backlog included)"),
            orderflow: of,
            baseline: Some(base),
            more_is_better: false,
            rule: Rule::None,
        });
    }
}

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
async fn expiry(rows: &mut Vec<Row>) {
    let n = scaled(100_000);
    let notified = "select count(*) from notifications";

    let env = Env::new("expiry_base").await;
    seed_stale_orders(&env.pool, n).await;
    let base = baseline::Baseline::start(env.pool.clone(), AMQP, env.topology.clone(), Duration::ZERO, 10_000).await;
    let started = Instant::now();
    let now = chrono::Utc::now();
    loop {
        let expired =
            orders::expire_batch(&env.pool, now - chrono::Duration::minutes(10), now, 5_000, "bench").await.unwrap();
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

/// 5. Idle: the real binary as its own process, on a migrated database.
async fn idle(rows: &mut Vec<Row>) {
    let env = Env::new("idle").await;
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let board = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let prefix = env.topology.queue(shared::events::EventType::OrderCreated).replace("order-created-event", "");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .env("DATABASE_URL", env.url())
        .env("AMQP_URL", AMQP)
        .env("QUEUE_PREFIX", &prefix)
        .env("HTTP_ADDR", http.to_string())
        .env("BOARD_ADDR", board.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    while !client.get(format!("http://{http}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "orderflow did not become ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id().unwrap())).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap()
        / 1024.0;
    let _ = child.kill().await;
    env.drop().await;
    rows.push(Row {
        scenario: "5 idle",
        metric: "RSS after start-up (orderflow all, own process), MiB".into(),
        orderflow: rss,
        baseline: None,
        more_is_better: false,
        rule: Rule::Below(60.0, "MiB"),
    });
    rows.push(Row {
        scenario: "5 idle",
        metric: "s from process start to /health/ready = 200".into(),
        orderflow: ready,
        baseline: None,
        more_is_better: false,
        rule: Rule::Below(2.0, "s"),
    });
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let args: Vec<String> = std::env::args().collect();
    if let Some(side) = args.iter().position(|a| a == "--in-flight-side").map(|i| args[i + 1].clone()) {
        let (time, peak) = runtime.block_on(in_flight_side(&side));
        #[expect(clippy::print_stdout, reason = "the child's report to its parent")]
        {
            println!("in-flight {time} {peak}");
        }
        return;
    }
    runtime.block_on(async {
        let started = Instant::now();
        let mut rows = Vec::new();
        // BENCH_ONLY=pipeline,expiry runs a subset (for profiling).
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
        if wanted("inflight") {
            eprintln!("scenario 3: in-flight capacity");
            in_flight(&mut rows);
        }
        // Repeated, alternating the two sides, keeping each side's best: a neighbour on the
        // machine (autovacuum, a checkpoint) then hurts one run, not the result.
        let repeats: usize = std::env::var("BENCH_REPEATS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
        if wanted("create") {
            rows.extend(repeated("1: create throughput", repeats, create_throughput).await);
        }
        if wanted("pipeline") {
            rows.extend(repeated("2: pipeline throughput", repeats, pipeline).await);
        }
        if wanted("expiry") {
            rows.extend(repeated("4: expiry sweep", repeats, expiry).await);
        }
        if wanted("idle") {
            eprintln!("scenario 5: idle");
            idle(&mut rows).await;
        }
        rows.sort_by_key(|r| r.scenario);
        let table = print_table(&rows, started.elapsed());
        #[expect(clippy::print_stdout, reason = "the benchmark's report")]
        {
            println!("\n{table}");
        }
    });
}
