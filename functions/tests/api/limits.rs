//! The HTTP limits (issue 17): the in-flight cap sheds, the request timeout answers, and metric
//! labels stay bounded whatever methods and paths clients make up.
//!
//! A request is held in flight deterministically by a client that sends its headers and only
//! part of its body: the handler waits for the rest.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with};

/// A login whose body is announced as 100 bytes, of which only the start is sent.
const HALF_A_LOGIN: &str = "POST /api/auth/login HTTP/1.1\r\nHost: orderflow\r\nContent-Type: application/json\r\n\
                            Content-Length: 100\r\n\r\n{\"email\":";

/// Opens a connection to `app` and sends `request` on it.
async fn send_raw(app: &TestApp, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads one response from `stream`: its status, its headers (lowercased) and its body.
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut bytes = Vec::new();
    let read = async {
        let mut buffer = [0_u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            bytes.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length || n == 0 {
                    return (head.to_ascii_lowercase(), body.to_owned());
                }
            }
            assert!(n > 0, "the connection closed before a response: {text:?}");
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(20), read).await.expect("no response within 20 s");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("no status line");
    (status, head, body)
}

#[tokio::test]
async fn a_request_past_the_in_flight_cap_gets_503_overloaded_with_retry_after_while_health_still_answers() {
    // Arrange: one request in flight at most, and one held there by a slow upload.
    let app = spawn_app_with(|config| config.http_max_in_flight = 1).await;
    let mut held = send_raw(&app, HALF_A_LOGIN).await;

    // Act: once the held request has its slot, another request is shed.
    let shed = eventually("a request to be shed", Duration::from_secs(10), || async {
        let response = app.client.get(app.url("/api/products")).send().await.unwrap();
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(response)
    })
    .await;
    let live = app.client.get(app.url("/health/live")).send().await.unwrap().status();
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().status();
    held.write_all(format!("{:<90}}}", "\"a@example.com\",\"password\":\"x\"").as_bytes()).await.unwrap();
    let (held_status, _, _) = read_response(&mut held).await;
    let after = app.client.get(app.url("/api/products")).send().await.unwrap().status();
    let scrape = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();

    // Assert.
    let retry_after = shed.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = shed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!((live, metrics), (StatusCode::OK, StatusCode::OK), "the probes and the scrape pass the cap");
    assert_ne!(held_status, 503, "the held request itself was served");
    assert_eq!(after, StatusCode::UNAUTHORIZED, "once the slot is free, requests are served again");
    assert!(scrape.contains(r#"orderflow_http_refused_total{reason="overloaded"}"#), "{scrape}");
}

#[tokio::test]
async fn a_request_whose_response_does_not_start_in_time_gets_503_request_timeout() {
    // Arrange.
    let app = spawn_app_with(|config| config.http_request_timeout_secs = 1).await;

    // Act: a handler that waits for a body that never comes.
    let mut stream = send_raw(&app, HALF_A_LOGIN).await;
    let (status, head, body) = read_response(&mut stream).await;

    // Assert.
    assert_eq!(status, 503, "{head}\n{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"orderflow_http_refused_total{reason="request_timeout"} 1"#), "{metrics}");
}

#[tokio::test]
async fn made_up_methods_and_unmatched_paths_each_collapse_into_one_metric_label() {
    // Arrange.
    let app = spawn_app().await;

    // Act.
    for n in 1..=20 {
        let method = Method::from_bytes(format!("M{n}").as_bytes()).unwrap();
        let made_up = app.client.request(method, app.url("/health/live")).send().await.unwrap();
        assert_eq!(made_up.status(), StatusCode::METHOD_NOT_ALLOWED);
        let unmatched = app.client.get(app.url(&format!("/no/such/route/{n}"))).send().await.unwrap();
        assert_eq!(unmatched.status(), StatusCode::NOT_FOUND);
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();

    // Assert.
    assert!(
        metrics.contains(r#"orderflow_http_requests_total{method="_OTHER",route="/health/live",status="405"} 20"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"orderflow_http_requests_total{method="GET",route="unmatched",status="404"} 20"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"method="M1""#), "{metrics}");
    assert!(!metrics.contains("/no/such/route"), "{metrics}");
}

#[tokio::test]
async fn the_request_timeout_does_not_cut_the_boards_live_log_stream() {
    // Arrange: a one-second request timeout.
    let app = spawn_app_with(|config| config.http_request_timeout_secs = 1).await;
    let board = app.board_address.clone().expect("the api serves the board");

    // Act: open the stream, and read it for three times the timeout.
    let events = app
        .client
        .get(format!("{board}/api/v1/events"))
        .basic_auth("admin@example.com", Some("admin123"))
        .send()
        .await
        .unwrap();
    let status = events.status();
    let mut stream = events.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut ended = None;
    while let Ok(next) = tokio::time::timeout_at(deadline, stream.next()).await {
        match next {
            Some(Ok(_keep_alive_or_event)) => {}
            other => {
                ended = Some(format!("{other:?}"));
                break;
            }
        }
    }

    // Assert: the timeout bounds the time to the response head, not the streamed body.
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended, None, "the live log stream ended within 3 s");
}
