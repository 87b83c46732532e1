//! HTTP limits against a real `orderflow api` process: slow clients (and idle keep-alive
//! connections) are disconnected by the server after the header-read timeout while others are
//! still served; connections past the cap get 503 `overloaded` and the ones under it are
//! unaffected; made-up methods and paths leave `/metrics` bounded.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::cluster::Cluster;

/// Half of a request's headers: the request line and one header, but not the blank line.
const HALF_THE_HEADERS: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: orderflow\r\nX-Slow: ";

/// A whole request for `/health/live` that keeps its connection open.
const HEALTH: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: orderflow\r\n\r\n";

/// Connects to a process's HTTP address (`http://…`).
async fn connect(http: &str) -> TcpStream {
    TcpStream::connect(http.trim_start_matches("http://")).await.expect("could not connect")
}

/// Reads from `stream` until the server closes it (EOF or reset); false if it is still open at
/// `deadline`.
async fn closed_by_server(stream: &mut TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut buffer = [0_u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A response (such as a 408) before the close is fine: keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `request` on `stream` and reads one response's head and body (up to its length).
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    let mut buffer = [0_u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            bytes.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
            if n == 0 {
                return text;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("no response within 10 s")
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn four_hundred_clients_that_send_half_their_headers_are_disconnected_while_others_are_served() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let case = async {
        // Arrange.
        let mut cluster = Cluster::new("http_slow_clients", &[("HTTP_HEADER_READ_TIMEOUT_SECS", "2")]).await;
        let api = cluster.start("api").await;
        let http = cluster.processes[api].http.clone();

        // Act: 400 connections, each with half its headers.
        let mut slow = Vec::with_capacity(400);
        for _ in 0..400 {
            let mut stream = connect(&http).await;
            stream.write_all(HALF_THE_HEADERS).await.unwrap();
            slow.push(stream);
        }
        let mut other = connect(&http).await;
        let answer = exchange(&mut other, HEALTH).await;

        // Assert: the other client was answered meanwhile, and every slow one is closed by the
        // server (within a generous 15 s; the timeout is 2 s, hyper's own default 30 s).
        assert!(answer.starts_with("HTTP/1.1 200"), "a normal request was not answered: {answer:?}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut still_open = 0;
        for stream in &mut slow {
            if !closed_by_server(stream, deadline).await {
                still_open += 1;
            }
        }
        assert_eq!(still_open, 0, "{still_open} of 400 slow connections were still open 15 s later");
        // The timer runs while a connection waits for its next request too (README, "Limits").
        assert!(closed_by_server(&mut other, deadline).await, "an idle keep-alive connection was still open");
        let mut after = connect(&http).await;
        let answer = exchange(&mut after, HEALTH).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "not answered after the slow clients: {answer:?}");
    };
    tokio::time::timeout(Duration::from_secs(120), case).await.expect("the case took longer than 2 minutes");
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn connections_past_the_cap_get_503_overloaded_and_the_ones_under_it_are_unaffected() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let case = async {
        // Arrange: a cap of 20, and no other client holding a connection (readiness is polled
        // over connections that close, then their slots are given a moment to come back).
        let mut cluster = Cluster::new("http_connection_cap", &[("HTTP_MAX_CONNECTIONS", "20")]).await;
        let api = cluster.spawn("api", &[]);
        let http = cluster.processes[api].http.clone();
        let ready = b"GET /health/ready HTTP/1.1\r\nHost: orderflow\r\nConnection: close\r\n\r\n";
        cluster
            .until("the api to be ready", Duration::from_secs(60), async || {
                let Ok(mut stream) = TcpStream::connect(http.trim_start_matches("http://")).await else {
                    return false;
                };
                exchange(&mut stream, ready).await.starts_with("HTTP/1.1 200")
            })
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        // Act: 20 connections served and kept open, then 10 more.
        let mut under = Vec::new();
        for n in 0..20 {
            let mut stream = connect(&http).await;
            let answer = exchange(&mut stream, HEALTH).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "connection {n} under the cap: {answer:?}");
            under.push(stream);
        }
        let mut past = Vec::new();
        for _ in 0..10 {
            let mut stream = connect(&http).await;
            past.push(exchange(&mut stream, HEALTH).await);
        }

        // Assert: each connection past the cap got the JSON 503 with Retry-After; the first 20
        // are still served.
        for answer in &past {
            let lower = answer.to_ascii_lowercase();
            assert!(lower.starts_with("http/1.1 503"), "{answer:?}");
            assert!(lower.contains("\r\nretry-after: 1\r\n"), "{answer:?}");
            assert!(lower.contains("content-type: application/json"), "{answer:?}");
            assert!(answer.contains(r#""code":"overloaded""#), "{answer:?}");
        }
        for (n, stream) in under.iter_mut().enumerate() {
            let answer = exchange(stream, HEALTH).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "connection {n} under the cap, again: {answer:?}");
        }
        let scrape = exchange(&mut under[0], b"GET /metrics HTTP/1.1\r\nHost: orderflow\r\n\r\n").await;
        assert!(scrape.contains(r#"orderflow_http_refused_total{reason="connections"} 10"#), "{scrape}");
    };
    tokio::time::timeout(Duration::from_secs(120), case).await.expect("the case took longer than 2 minutes");
}

#[tokio::test]
#[ignore = "part of the abuse suite (see the module docs)"]
async fn three_hundred_made_up_methods_and_three_hundred_unmatched_paths_leave_metrics_bounded() {
    let _serial = crate::ONE_AT_A_TIME.lock().await;
    let case = async {
        // Arrange: a scrape, so that the scrape's own series exists before the count.
        let mut cluster = Cluster::new("http_metric_labels", &[]).await;
        let api = cluster.start("api").await;
        let http = cluster.processes[api].http.clone();
        let client = reqwest::Client::new();
        let scrape = async || client.get(format!("{http}/metrics")).send().await.unwrap().text().await.unwrap();
        scrape().await;
        let before = scrape().await.lines().count();

        // Act.
        for n in 1..=300 {
            let method = reqwest::Method::from_bytes(format!("M{n}").as_bytes()).unwrap();
            client.request(method, format!("{http}/health/live")).send().await.unwrap();
            client.get(format!("{http}/made/up/path/{n}")).send().await.unwrap();
        }
        let metrics = scrape().await;

        // Assert: two new series (a counter line and a histogram each), not six hundred.
        let grown = metrics.lines().count().saturating_sub(before);
        assert!(grown <= 60, "/metrics grew by {grown} lines");
        assert!(metrics.contains(r#"method="_OTHER""#), "{metrics}");
        assert!(metrics.contains(r#"route="unmatched""#), "{metrics}");
        assert!(!metrics.contains(r#"method="M1""#), "{metrics}");
    };
    tokio::time::timeout(Duration::from_secs(120), case).await.expect("the case took longer than 2 minutes");
}
