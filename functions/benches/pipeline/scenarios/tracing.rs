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
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, routing::post};

use crate::{
    env::Env,
    load::http_creates,
    report::{Row, Rule},
    scaled, server,
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

/// `n` orders through the real binary, with `otel` added to its settings.
async fn run_side(tag: &str, n: usize, otel: &[(&str, &str)]) -> Side {
    let env = Env::new(tag).await;
    let mut settings = vec![("PAYMENT_DELAY_MS", "0"), ("PAYMENT_SUCCESS_RATE", "1.0")];
    settings.extend_from_slice(otel);
    let server = server::orderflow(&env, "all", &settings).await;
    let creates = http_creates(&server, n).await;
    let done = env.wait_for("select count(*) from notifications", n as i64, Duration::from_secs(300)).await;
    let side = Side {
        orders_per_s: n as f64 / (done - creates.started).as_secs_f64(),
        create_p99_ms: creates.percentile(0.99),
        rss_mib: server.rss_mib(),
    };
    server.stop().await;
    env.drop().await;
    side
}

/// 6. Tracing: the binary with OpenTelemetry off, without the exporter, and with it.
pub async fn tracing_cost(rows: &mut Vec<Row>) {
    let n = scaled(10_000);
    let disabled = run_side("tracing_disabled", n, &[("OTEL_SDK_DISABLED", "true")]).await;
    let off = run_side("tracing_off", n, &[]).await;
    let (addr, received) = collector().await;
    let endpoint = format!("http://{addr}");
    let on = run_side(
        "tracing_on",
        n,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "orderflow-bench"),
        ],
    )
    .await;
    let batches = received.batches.load(Ordering::Relaxed);
    assert!(batches > 0, "the exporter sent nothing to the collector stand-in");
    let per_order = received.bytes.load(Ordering::Relaxed) as f64 / n as f64;
    for (side, name) in [(&off, "spans, no exporter"), (&on, "spans exported")] {
        let row = |metric: &str, value: f64, base: f64| Row {
            scenario: "6 tracing",
            metric: format!("{metric}; {name} vs OpenTelemetry off"),
            orderflow: value,
            baseline: Some(base),
            rule: Rule::None,
            chart: None,
        };
        rows.push(row(
            &format!("orders/s through the binary, first create to last notification ({n})"),
            side.orders_per_s,
            disabled.orders_per_s,
        ));
        rows.push(row("p99 create latency, ms", side.create_p99_ms, disabled.create_p99_ms));
        rows.push(row("RSS after the run, MiB", side.rss_mib, disabled.rss_mib));
    }
    rows.push(Row {
        scenario: "6 tracing",
        metric: format!("OTLP bytes exported per order ({batches} batches)"),
        orderflow: per_order,
        baseline: None,
        rule: Rule::None,
        chart: None,
    });
}
