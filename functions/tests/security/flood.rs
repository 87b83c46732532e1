//! A login flood against the real binary (issue 11, item 3): 200 concurrent clients posting
//! wrong passwords for 20 s. The process's memory stays bounded, it stays live, another user
//! still logs in and creates an order, and the surplus is refused with 429 and Retry-After.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{child::ChildApp, helpers::order_body};

const FLOODERS: usize = 200;
const FLOOD_FOR: Duration = Duration::from_secs(20);
const RSS_LIMIT_KIB: u64 = 150 * 1024;
/// Generous: the machine is shared, and the project asserts no latencies.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The flood comes from this loopback address; the legitimate user from 127.0.0.1.
const FLOODER_ADDRESS: [u8; 4] = [127, 0, 0, 2];

/// What the flooders got back.
#[derive(Default)]
struct Tally {
    unauthorized: AtomicU64,
    too_many: AtomicU64,
    too_many_without_retry_after: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

async fn flood(app: Arc<ChildApp>, tally: Arc<Tally>, deadline: Instant) {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::from(FLOODER_ADDRESS))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let url = app.url("/api/auth/login");
    let mut attempt = 0_u64;
    while Instant::now() < deadline {
        attempt += 1;
        // A new unknown e-mail each time, as a credential-stuffing list would send: the account
        // throttle never engages, only the pool stands in the way.
        let body =
            json!({ "email": format!("flood-{attempt}-{}@example.com", uuid::Uuid::new_v4()), "password": "wrong" });
        match client.post(&url).json(&body).send().await {
            Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                tally.unauthorized.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                tally.too_many.fetch_add(1, Ordering::Relaxed);
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                let code = response.json::<Value>().await.ok().map(|b| b["error"]["code"].clone());
                if retry_after.is_none_or(|secs| secs == 0) || code != Some(json!("too_many_requests")) {
                    tally.too_many_without_retry_after.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {
                tally.other.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_leaves_memory_bounded_liveness_logins_and_orders_working() {
    // The address limit is lifted so that the whole flood reaches the password checks, as one
    // from many addresses would.
    let app = Arc::new(ChildApp::start(&[("LOGIN_FAILURES_PER_ADDRESS", "1000000000")]).await);
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap();
    let rss_before = app.memory_kib("VmRSS");
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + FLOOD_FOR;
    let flooders: Vec<_> = (0..FLOODERS).map(|_| tokio::spawn(flood(app.clone(), tally.clone(), deadline))).collect();

    // While it floods: liveness and memory every half second, a login and an order midway.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let login = client
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": "admin@example.com", "password": "admin123" }))
        .send()
        .await
        .unwrap();
    let login_status = login.status();
    let token = login.json::<Value>().await.unwrap()["token"].as_str().map(str::to_owned);
    let order_status = match &token {
        Some(token) => {
            let created = client.post(app.url("/api/orders")).bearer_auth(token).json(&order_body()).send().await;
            Some(created.unwrap().status())
        }
        None => None,
    };
    let (mut live_answers, mut live_misses, mut slowest_live, mut rss_peak) = (0, 0, Duration::ZERO, 0);
    while Instant::now() < deadline {
        let started = Instant::now();
        match client.get(app.url("/health/live")).send().await {
            Ok(response) if response.status() == StatusCode::OK => live_answers += 1,
            _ => live_misses += 1,
        }
        slowest_live = slowest_live.max(started.elapsed());
        rss_peak = rss_peak.max(app.memory_kib("VmRSS"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for flooder in flooders {
        flooder.await.unwrap();
    }
    let (rss_after, peak) = (app.memory_kib("VmRSS"), app.memory_kib("VmHWM"));
    let summary = format!(
        "RSS before {rss_before} KiB, sampled peak {rss_peak} KiB, after {rss_after} KiB, VmHWM {peak} KiB; \
         401: {}, 429: {}, other: {}, client errors: {}; /health/live answered {live_answers}, missed \
         {live_misses}, slowest {slowest_live:?}; log: {}",
        Tally::get(&tally.unauthorized),
        Tally::get(&tally.too_many),
        Tally::get(&tally.other),
        Tally::get(&tally.failed),
        app.log.display()
    );
    eprintln!("{summary}");

    assert!(peak < RSS_LIMIT_KIB, "the process peaked over 150 MiB: {summary}");
    assert!(live_answers > 0 && live_misses == 0, "/health/live did not always answer: {summary}");
    assert_eq!(login_status, StatusCode::OK, "the admin could not log in during the flood: {summary}");
    assert_eq!(order_status, Some(StatusCode::CREATED), "no order was created during the flood: {summary}");
    assert!(Tally::get(&tally.unauthorized) > 0, "no password was checked: {summary}");
    assert!(Tally::get(&tally.too_many) > 0, "the surplus was never refused: {summary}");
    assert_eq!(Tally::get(&tally.too_many_without_retry_after), 0, "a 429 without Retry-After: {summary}");
    assert_eq!(Tally::get(&tally.other), 0, "unexpected answers: {summary}");
}
