//! The load: orders created over HTTP by many concurrent callers in this process (a process of
//! its own, apart from the server it loads), and what such a burst measured.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use serde_json::{Value, json};

use crate::server::Server;

/// How many callers create orders at once.
pub const CONCURRENCY: usize = 64;

/// What a burst of creates measured.
pub struct Creates {
    /// When the first caller started.
    pub started: Instant,
    /// When the last caller finished.
    pub finished: Instant,
    latencies_ms: Vec<f64>,
}

impl Creates {
    /// Creates per second over the whole burst.
    pub fn per_second(&self) -> f64 {
        self.latencies_ms.len() as f64 / (self.finished - self.started).as_secs_f64()
    }

    /// The `p` (0 to 1) percentile of the creates' latencies, in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
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

/// `n` orders created with `POST /api/orders` on `server`, each answered 201.
pub async fn http_creates(server: &Server, n: usize) -> Creates {
    http_creates_to(&server.client, &server.base, &server.token, n).await
}

/// `n` orders created with `POST {base}/api/orders` as the holder of `token`, each answered 201.
async fn http_creates_to(client: &reqwest::Client, base: &str, token: &str, n: usize) -> Creates {
    let (client, url, token) = (client.clone(), format!("{base}/api/orders"), token.to_owned());
    create_many(n, move || {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let response = client.post(&url).bearer_auth(&token).json(&order_body()).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201);
        }
    })
    .await
}
