//! Scenario 6, tracing: what OpenTelemetry costs in the real `orderflow` binary. The same
//! pipeline (orders created over HTTP, each paid, completed and notified) runs three times
//! against the binary as users start it (its default `RUST_LOG`, output discarded): with
//! OpenTelemetry off (`OTEL_SDK_DISABLED=true`: no spans, no trace ids), the baseline; as shipped
//! (spans and trace ids in the logs, the outbox and the journal, no exporter); and exporting every
//! span over OTLP/HTTP to a collector stand-in inside this process (it answers each batch with
//! 200 and counts it).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, routing::post};

use crate::{
    env::{AMQP, Env, POOL},
    load::{CONCURRENCY, http_creates_to},
    orderflow::admin_token,
    report::{Row, Rule},
    rss::rss_mib_of,
    scaled,
};

/// What the collector stand-in received.
#[derive(Default)]
struct Received {
    batches: AtomicU64,
    bytes: AtomicU64,
}

/// A collector stand-in on 127.0.0.1: `POST /v1/traces` answered 200 with an empty (valid)
/// protobuf response, each batch counted.
async fn collector() -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received::default());
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(received): State<Arc<Received>>, body: Bytes| async move {
                received.batches.fetch_add(1, Ordering::Relaxed);
                received.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                [("content-type", "application/x-protobuf")]
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// One side's figures.
struct Side {
    orders_per_s: f64,
    create_p99_ms: f64,
    rss_mib: f64,
}

/// `n` orders through the real binary, with `otel` added to its environment.
async fn run_side(tag: &str, n: usize, otel: &[(&str, String)]) -> Side {
    let env = Env::new(tag).await;
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let board = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    command
        .env("DATABASE_URL", env.url())
        .env("AMQP_URL", AMQP)
        .env("QUEUE_PREFIX", env.queue_prefix())
        .env("HTTP_ADDR", http.to_string())
        .env("BOARD_ADDR", board.to_string())
        .env("DB_MAX_CONNECTIONS", POOL.to_string())
        .env("PAYMENT_DELAY_MS", "0")
        .env("PAYMENT_SUCCESS_RATE", "1.0")
        .env_remove("RUST_LOG")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .envs(otel.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let base = format!("http://{http}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let started = Instant::now();
    while !client.get(format!("{base}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "orderflow did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = admin_token(&client, &base).await;
    let creates = http_creates_to(&client, &base, &token, n).await;
    let done = env.wait_for("select count(*) from notifications", n as i64, Duration::from_secs(300)).await;
    let side = Side {
        orders_per_s: n as f64 / (done - creates.started).as_secs_f64(),
        create_p99_ms: creates.percentile(0.99),
        rss_mib: rss_mib_of(child.id().unwrap()),
    };
    let _ = child.kill().await;
    env.drop().await;
    side
}

/// 6. Tracing: the binary with OpenTelemetry off, without the exporter, and with it.
pub async fn tracing_cost(rows: &mut Vec<Row>) {
    let n = scaled(10_000);
    let disabled = run_side("tracing_disabled", n, &[("OTEL_SDK_DISABLED", "true".into())]).await;
    let off = run_side("tracing_off", n, &[]).await;
    let (addr, received) = collector().await;
    let on = run_side(
        "tracing_on",
        n,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_SERVICE_NAME", "orderflow-bench".into()),
        ],
    )
    .await;
    let batches = received.batches.load(Ordering::Relaxed);
    assert!(batches > 0, "the exporter sent nothing to the collector stand-in");
    let per_order = received.bytes.load(Ordering::Relaxed) as f64 / n as f64;
    for (side, name) in [(&off, "spans, no exporter"), (&on, "spans exported")] {
        let row = |metric: &str, value: f64, base: f64, more_is_better: bool| Row {
            scenario: "6 tracing",
            metric: format!("{metric}; {name} vs OpenTelemetry off"),
            orderflow: value,
            baseline: Some(base),
            more_is_better,
            rule: Rule::None,
        };
        rows.push(row(
            &format!("orders/s through the binary, first create to last notification ({n})"),
            side.orders_per_s,
            disabled.orders_per_s,
            true,
        ));
        rows.push(row("p99 create latency, ms", side.create_p99_ms, disabled.create_p99_ms, false));
        rows.push(row("RSS after the run, MiB", side.rss_mib, disabled.rss_mib, false));
    }
    rows.push(Row {
        scenario: "6 tracing",
        metric: format!("OTLP bytes exported per order ({batches} batches)"),
        orderflow: per_order,
        baseline: None,
        more_is_better: false,
        rule: Rule::None,
    });
}
