//! One trace per order (issue 13): W3C trace context from `POST /api/orders` through the outbox
//! and RabbitMQ to every function, in the JSON logs, the journal, the timeline, and the spans a
//! small OTLP/HTTP endpoint in the test receives from the real binary.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use lapin::types::{AMQPValue, FieldTable};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{KeyValue, any_value::Value as Attribute},
    trace::v1::Span,
};
use prost::Message as _;
use serde_json::Value;

use crate::{
    helpers::{eventually, order_body, publish_with_headers},
    process::Binary,
};

/// The trace a client started, and the client's span that `POST /api/orders` continues.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// An OTLP/HTTP trace endpoint on 127.0.0.1: every span of every batch it is sent, decoded.
struct Collector {
    address: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(
                "/v1/traces",
                post(|State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes| async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf trace request");
                    let batch = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
                    spans.lock().unwrap().extend(batch);
                    [("content-type", "application/x-protobuf")]
                }),
            )
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { address, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The spans received so far, by their span id (hex).
    fn spans(&self) -> HashMap<String, Span> {
        self.spans.lock().unwrap().iter().map(|span| (hex(&span.span_id), span.clone())).collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Attribute> {
    span.attributes.iter().find(|KeyValue { key: k, .. }| k == key)?.value.as_ref()?.value.as_ref()
}

fn string_attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key)? {
        Attribute::StringValue(value) => Some(value),
        _ => None,
    }
}

/// The span ids from `span_id` up through its parents, as far as the collector has them, and the
/// first parent id it does not have (the remote parent that started the chain).
fn ancestry(spans: &HashMap<String, Span>, span_id: &str) -> (Vec<String>, String) {
    let mut chain = Vec::new();
    let mut next = span_id.to_owned();
    while let Some(span) = spans.get(&next) {
        chain.push(next.clone());
        next = hex(&span.parent_span_id);
    }
    (chain, next)
}

/// Settings that make the binary log JSON at `info`, where the request and job spans are.
const JSON_LOGS: [(&str, &str); 2] = [("LOG_FORMAT", "json"), ("RUST_LOG", "info")];

/// [`JSON_LOGS`], and export to `endpoint` every 100 ms.
fn traced(endpoint: &str) -> [(&'static str, &str); 4] {
    [JSON_LOGS[0], JSON_LOGS[1], ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100")]
}

/// Creates an order, with `traceparent` if given; its id.
async fn create_order(binary: &Binary, token: &str, traceparent: Option<&str>) -> i64 {
    let mut request = binary.client.post(binary.url("/api/orders")).bearer_auth(token).json(&order_body());
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// Waits for the JSON log line whose message is `message`; the line.
async fn log_line(binary: &Binary, message: &str) -> Value {
    eventually(&format!("the log line `{message}`"), Duration::from_secs(20), || async {
        binary.json_lines().into_iter().find(|line| line["message"] == message)
    })
    .await
}

#[tokio::test]
async fn an_orders_traceparent_is_continued_by_every_function_and_its_spans_are_exported() {
    let collector = Collector::start().await;
    let endpoint = collector.endpoint();
    let binary = Binary::start(&traced(&endpoint)).await;
    let token = binary.admin_token().await;

    let id = create_order(&binary, &token, Some(&traceparent(TRACE, CLIENT_SPAN))).await;

    // The JSON lines of the request and of both functions carry the client's trace.
    let created = log_line(&binary, "order created").await;
    let paid = log_line(&binary, &format!("order {id} completed")).await;
    let mailed = log_line(&binary, &format!("e-mail sent: order {id} confirmed, total 29.97")).await;
    for line in [&created, &paid, &mailed] {
        assert_eq!(line["trace_id"], TRACE, "{line}");
    }
    assert_eq!(paid["span"]["job.function"], "on_order_created", "{paid}");
    assert_eq!(mailed["span"]["job.function"], "on_order_completed", "{mailed}");
    assert_eq!(created["span"]["otel.name"], "POST /api/orders", "named for export: {created}");
    let span_ids: Vec<&Value> = [&created, &paid, &mailed].map(|line| &line["span_id"]).to_vec();
    assert!(span_ids[0] != span_ids[1] && span_ids[1] != span_ids[2], "each in a span of its own: {span_ids:?}");

    // The outbox rows, the journal and the timeline keep it.
    let pool = binary.pool().await;
    let outbox: Vec<(String, Option<String>)> =
        sqlx::query_as("select event_type, traceparent from outbox where order_id = $1 order by created_at")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert!(outbox.iter().all(|(_, parent)| parent.as_deref().is_some_and(|p| p.contains(TRACE))), "{outbox:?}");
    let timeline = eventually("the order's timeline to show both jobs finished", Duration::from_secs(20), || async {
        let timeline = binary.get_json(&token, &format!("/api/orders/{id}/events")).await?;
        let timeline = timeline.as_array()?.clone();
        // OrderCreated and OrderCompleted written and published; two jobs started and finished.
        let traced = timeline.iter().filter(|entry| entry["traceId"] == TRACE).count();
        (traced == 8).then_some(timeline)
    })
    .await;
    for entry in &timeline {
        let source = entry["source"].as_str().unwrap();
        let expected = if ["outbox", "job"].contains(&source) { Value::from(TRACE) } else { Value::Null };
        assert_eq!(entry["traceId"], expected, "{entry}");
    }
    let jobs: Vec<(String, Option<String>)> =
        sqlx::query_as("select function, trace_id from job_journal where order_id = $1 order by function")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected = ["on_order_completed", "on_order_created"].map(|f| (f.to_owned(), Some(TRACE.to_owned())));
    assert_eq!(jobs, expected.to_vec());

    // The exported spans: the request continues the client's span, the payment job the request,
    // the notification job the payment job.
    let queue = |event: &str| format!("process {}{event}", binary.config.queue_prefix);
    let (created_queue, completed_queue) = (queue("order-created-event"), queue("order-completed-event"));
    let spans = eventually("the notification job's span", Duration::from_secs(20), || async {
        let spans = collector.spans();
        spans.values().any(|span| span.name == completed_queue).then_some(spans)
    })
    .await;
    let named =
        |name: &str| spans.values().find(|span| span.name == name).unwrap_or_else(|| panic!("no `{name}` span"));
    let (request, payment, notification) = (named("POST /api/orders"), named(&created_queue), named(&completed_queue));
    for span in [request, payment, notification] {
        assert_eq!(hex(&span.trace_id), TRACE, "{span:?}");
    }
    let (chain, remote_parent) = ancestry(&spans, &hex(&notification.span_id));
    assert_eq!(remote_parent, CLIENT_SPAN, "the chain ends at the client's span");
    for span in [request, payment] {
        assert!(chain.contains(&hex(&span.span_id)), "{} is an ancestor of the notification job", span.name);
    }
    let (below_payment, _) = ancestry(&spans, &hex(&payment.span_id));
    assert!(below_payment.contains(&hex(&request.span_id)), "the request is an ancestor of the payment job");

    // Named and described by OpenTelemetry's conventions.
    assert_eq!(string_attribute(request, "http.route"), Some("/api/orders"));
    assert_eq!(string_attribute(request, "http.request.method"), Some("POST"));
    for (span, queue) in [(payment, "order-created-event"), (notification, "order-completed-event")] {
        assert_eq!(string_attribute(span, "messaging.system"), Some("rabbitmq"), "{span:?}");
        assert_eq!(string_attribute(span, "messaging.operation.type"), Some("process"), "{span:?}");
        let destination = format!("{}{queue}", binary.config.queue_prefix);
        assert_eq!(string_attribute(span, "messaging.destination.name"), Some(destination.as_str()));
        assert!(string_attribute(span, "messaging.message.id").is_some_and(|id| !id.is_empty()), "{span:?}");
    }
}

#[tokio::test]
async fn an_order_with_a_garbage_traceparent_completes_in_a_trace_of_its_own() {
    let binary = Binary::start(&JSON_LOGS).await;
    let token = binary.admin_token().await;

    let id = create_order(&binary, &token, Some("00-not-a-trace-at-all")).await;

    binary.await_order_status(&token, id, "Completed").await;
    let created = log_line(&binary, "order created").await;
    let paid = log_line(&binary, &format!("order {id} completed")).await;
    let mailed = log_line(&binary, &format!("e-mail sent: order {id} confirmed, total 29.97")).await;
    let trace = created["trace_id"].as_str().expect("a trace id on the request's line");
    assert_eq!(trace.len(), 32, "{created}");
    assert_ne!(trace, "not-a-trace-at-all");
    assert_eq!(paid["trace_id"], trace, "one new trace for the whole order: {paid}");
    assert_eq!(mailed["trace_id"], trace, "one new trace for the whole order: {mailed}");
}

#[tokio::test]
async fn a_process_that_exports_nothing_keeps_to_the_span_fields_its_log_lines_show() {
    let binary = Binary::start(&JSON_LOGS).await;
    let token = binary.admin_token().await;

    let id = create_order(&binary, &token, None).await;

    binary.await_order_status(&token, id, "Completed").await;
    let created = log_line(&binary, "order created").await;
    let paid = log_line(&binary, &format!("order {id} completed")).await;
    let (request, job) = (&created["span"], &paid["span"]);
    assert_eq!(request["http.request.method"], "POST", "{created}");
    assert_eq!(request["url.path"], "/api/orders", "{created}");
    assert_eq!(job["job.function"], "on_order_created", "{paid}");
    assert_eq!(job["job.attempt"], 1, "{paid}");
    assert!(job["messaging.message.id"].as_str().is_some_and(|id| !id.is_empty()), "{paid}");
    // What only an exported span shows is not held, nor written on every line.
    for (span, line) in [(request, &created), (job, &paid)] {
        for name in ["otel.name", "otel.kind", "http.route", "messaging.system", "messaging.destination.name"] {
            assert!(span.get(name).is_none(), "{name} in {line}");
        }
    }
}

/// Publishes a foreign `OrderCompleted` for the already notified order `id` with `headers`, and
/// waits for the line its job logs; the line, and the message id.
async fn foreign_completion(binary: &Binary, id: i64, headers: FieldTable) -> (Value, String) {
    let message_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({ "orderId": id, "userId": 1, "total": 29.97 }).to_string();
    let queue = format!("{}order-completed-event", binary.config.queue_prefix);
    publish_with_headers(&queue, body.as_bytes(), &message_id, headers).await;
    let message = format!("order {id} was already notified; nothing to do");
    let line = eventually("the foreign message's job to log", Duration::from_secs(20), || async {
        binary.json_lines().into_iter().find(|line| {
            line["span"]["messaging.message.id"] == message_id.as_str() && line["message"] == message.as_str()
        })
    })
    .await;
    (line, message_id)
}

fn trace_headers(names: &[&str], value: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    for name in names {
        headers.insert((*name).into(), AMQPValue::LongString(value.into()));
    }
    headers
}

/// The first value under `key` anywhere in `value`.
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(key).or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

#[tokio::test]
async fn a_foreign_message_with_an_x_apalis_traceparent_header_is_continued() {
    let binary = Binary::start(&JSON_LOGS).await;
    let token = binary.admin_token().await;
    let id = create_order(&binary, &token, None).await;
    // The order's own OrderCompleted is handled first, so the foreign ones find it notified.
    log_line(&binary, &format!("e-mail sent: order {id} confirmed, total 29.97")).await;
    let foreign_trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = traceparent(foreign_trace, "b7ad6b7169203331");

    // Another producer announces the order's completion again, in its own trace, under both
    // names; apalis-amqp hands a task only the `x-apalis-` headers
    // (docs/upstream/apalis-amqp-trace-headers.md), so the plain name alone starts a new trace.
    let (line, message_id) =
        foreign_completion(&binary, id, trace_headers(&["traceparent", "x-apalis-traceparent"], &parent)).await;
    let (plain_only, _) = foreign_completion(&binary, id, trace_headers(&["traceparent"], &parent)).await;

    assert_eq!(line["trace_id"], foreign_trace, "{line}");
    assert!(plain_only["trace_id"].as_str().is_some_and(|t| t.len() == 32 && t != foreign_trace), "{plain_only}");
    let pool = binary.pool().await;
    let journaled = eventually("the foreign message's journal row", Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, Option<String>>(
            "select trace_id from job_journal where message_id = $1 and status = 'Done'",
        )
        .bind(&message_id)
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(journaled.as_deref(), Some(foreign_trace));
    // The board's task page shows it in the job's context.
    let queue = format!("{}order-completed-event", binary.config.queue_prefix);
    let task = binary.board_get(&format!("/queues/{queue}/tasks/{message_id}")).await;
    assert_eq!(task.status(), 200);
    let task: Value = task.json().await.unwrap();
    assert_eq!(find_key(&task["ctx"], "trace_id"), Some(&Value::from(foreign_trace)), "{task}");
}

#[tokio::test]
async fn with_the_collector_down_orders_still_complete_and_the_log_says_so_once() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let endpoint = format!("http://{closed}");
    let binary = Binary::start(&traced(&endpoint)).await;
    let token = binary.admin_token().await;

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_order(&binary, &token, None).await);
        // Several export batches fail, 100 ms apart.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    for id in ids {
        binary.await_order_status(&token, id, "Completed").await;
    }
    let warned = |line: &Value| {
        line["message"].as_str().is_some_and(|m| m.starts_with("the trace collector did not take a batch of spans"))
    };
    eventually("the warning about the collector", Duration::from_secs(10), || async {
        binary.json_lines().iter().any(warned).then_some(())
    })
    .await;
    assert_eq!(binary.json_lines().iter().filter(|line| warned(line)).count(), 1, "said at most once a minute");
}

#[tokio::test]
async fn with_opentelemetry_disabled_an_order_completes_with_no_trace_anywhere() {
    let collector = Collector::start().await;
    let endpoint = collector.endpoint();
    let mut env = traced(&endpoint).to_vec();
    env.push(("OTEL_SDK_DISABLED", "true"));
    let binary = Binary::start(&env).await;
    let token = binary.admin_token().await;

    let id = create_order(&binary, &token, Some(&traceparent(TRACE, CLIENT_SPAN))).await;

    let mailed = log_line(&binary, &format!("e-mail sent: order {id} confirmed, total 29.97")).await;
    assert!(mailed.get("trace_id").is_none(), "{mailed}");
    let pool = binary.pool().await;
    let done = eventually("both jobs journaled Done", Duration::from_secs(20), || async {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("select status, trace_id from job_journal where order_id = $1")
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap();
        (rows.len() == 2 && rows.iter().all(|(status, _)| status == "Done")).then_some(rows)
    })
    .await;
    assert!(done.iter().all(|(_, trace)| trace.is_none()), "{done:?}");
    let traced: i64 = sqlx::query_scalar("select count(*) from outbox where order_id = $1 and traceparent is not null")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(traced, 0);
    // Several export intervals later, nothing has been sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(collector.spans().len(), 0);
}
