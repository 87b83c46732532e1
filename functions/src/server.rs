//! Serving a router on a listener within the HTTP limits (DESIGN.md section 6, rule 8): a client
//! must send its headers within `HTTP_HEADER_READ_TIMEOUT_SECS`, a response must start within
//! `HTTP_REQUEST_TIMEOUT_SECS`, a listener holds at most `HTTP_MAX_CONNECTIONS` connections and
//! works on at most `HTTP_MAX_IN_FLIGHT` requests. Every limit hit is answered with our JSON error
//! (503 with `Retry-After`) or, for a client too slow to send its headers, a closed connection.
//!
//! `axum::serve` can set neither a header-read timeout nor a connection cap, hence this small
//! accept loop over hyper's HTTP/1 connections; it shuts down as `axum::serve` did: stop
//! accepting, let in-flight requests finish (the supervisor bounds how long).

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    error_handling::HandleErrorLayer,
    extract::{ConnectInfo, Request},
    response::{IntoResponse, Response},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use shared::{
    Config,
    metrics::{Metrics, RefusalLabels},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;
use tower::{
    BoxError, ServiceBuilder, ServiceExt,
    limit::GlobalConcurrencyLimitLayer,
    steer::Steer,
    timeout::error::Elapsed,
    util::{BoxCloneService, BoxCloneSyncService},
};

use crate::http::ApiError;

/// The limits every listener serves within, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers (`HTTP_HEADER_READ_TIMEOUT_SECS`).
    pub header_read_timeout: Duration,
    /// How long a request may take until its response starts (`HTTP_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// Connections open at once (`HTTP_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Requests worked on at once, health and metrics aside (`HTTP_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
}

impl HttpLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(config.http_header_read_timeout_secs),
            request_timeout: Duration::from_secs(config.http_request_timeout_secs),
            max_connections: usize::try_from(config.http_max_connections).unwrap_or(usize::MAX),
            max_in_flight: usize::try_from(config.http_max_in_flight).unwrap_or(usize::MAX),
        }
    }
}

/// One request, as every router takes it.
type Routed = BoxCloneSyncService<Request, Response, BoxError>;

/// Serves `router` on `listener` within `limits` until `stop` is cancelled, then stops accepting
/// and waits for the open connections to finish their requests. Handlers can read the client's
/// address as `ConnectInfo<SocketAddr>` (the login throttle counts by it).
///
/// # Errors
/// None so far: a failed accept is logged and retried, a failed connection concerns its client.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let service = limited(router, limits, &metrics);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut refusing = http.clone();
    refusing.keep_alive(false);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are bounded too, so that a flood past the cap costs no more than the cap.
    let refusals = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, client) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e, &stop).await;
                    continue;
                }
            },
        };
        if let Ok(permit) = connections.clone().try_acquire_owned() {
            let service = service.clone().map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(client));
                request.map(Body::new)
            });
            let connection =
                graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
            tokio::spawn(async move {
                // An error here is the client's (it went away, or was too slow with its headers).
                if let Err(e) = connection.await {
                    tracing::debug!(client.addr = %client, error = %e, "HTTP connection ended");
                }
                drop(permit);
            });
        } else if let Ok(permit) = refusals.clone().try_acquire_owned() {
            tracing::debug!(client.addr = %client, "too many HTTP connections; refusing one");
            metrics.http_refused.get_or_create(&RefusalLabels::of("connections")).inc();
            tokio::spawn(refuse(stream, refusing.clone(), permit));
        } else {
            metrics.http_refused.get_or_create(&RefusalLabels::of("connections")).inc();
            drop(stream);
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection past the cap with one 503 `overloaded` (read the request first, so
/// that the client sees the answer rather than a reset), then closes it.
async fn refuse(stream: TcpStream, http: http1::Builder, permit: tokio::sync::OwnedSemaphorePermit) {
    let overloaded = hyper::service::service_fn(|_request: hyper::Request<Incoming>| async {
        Ok::<_, Infallible>(ApiError::Overloaded.into_response())
    });
    let _ = http.serve_connection(TokioIo::new(stream), overloaded).await;
    drop(permit);
}

/// An accept that failed: a connection that went away before it was accepted concerns nobody;
/// anything else (out of file descriptors) is logged and waited out a moment, as
/// `axum::serve` does, so that the loop does not spin.
async fn accept_failed(e: &std::io::Error, stop: &CancellationToken) {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting an HTTP connection failed; retrying in 1 s");
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

/// `router` within the request timeout and the in-flight cap; health and metrics are steered
/// past the cap, so that a saturated process still answers its probes and its scrapes (a
/// liveness probe failing under load would restart a process that is only busy).
fn limited(
    router: Router,
    limits: HttpLimits,
    metrics: &Arc<Metrics>,
) -> BoxCloneService<Request, Response, Infallible> {
    let uncapped: Routed = BoxCloneSyncService::new(ServiceExt::<Request>::map_err(router.clone(), BoxError::from));
    let capped: Routed = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .load_shed()
            // One semaphore for every clone of the router, i.e. for the listener.
            .layer(GlobalConcurrencyLimitLayer::new(limits.max_in_flight))
            .service(router),
    );
    let steer = Steer::new([uncapped, capped], |request: &Request, _: &[Routed]| {
        usize::from(!is_operations(request.uri().path()))
    });
    let (timeout, metrics) = (limits.request_timeout, metrics.clone());
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |error: BoxError| async move { refusal(&error, timeout, &metrics) }))
            // On the service's future, which ends when the response starts: a streamed body (the
            // board's live log) is not cut.
            .timeout(timeout)
            .service(steer),
    )
}

/// Whether `path` is one the in-flight cap leaves alone: the probes and the scrape, exactly.
fn is_operations(path: &str) -> bool {
    matches!(path, "/health/live" | "/health/ready" | "/metrics")
}

/// The answer to a request the limits stopped.
fn refusal(error: &BoxError, timeout: Duration, metrics: &Metrics) -> Response {
    if error.is::<Elapsed>() {
        tracing::warn!(timeout_secs = timeout.as_secs(), "a request timed out");
        metrics.http_refused.get_or_create(&RefusalLabels::of("request_timeout")).inc();
        ApiError::RequestTimeout(timeout).into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        tracing::debug!("too many requests in flight; shedding one");
        metrics.http_refused.get_or_create(&RefusalLabels::of("overloaded")).inc();
        ApiError::Overloaded.into_response()
    } else {
        ApiError::Internal(anyhow::anyhow!("serving a request failed: {error}")).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_probes_and_the_scrape_pass_the_in_flight_cap() {
        assert!(is_operations("/health/live"));
        assert!(is_operations("/health/ready"));
        assert!(is_operations("/metrics"));
        assert!(!is_operations("/health/../api/orders"));
        assert!(!is_operations("/api/orders"));
        assert!(!is_operations("/healthz"));
    }
}
