//! `GET /metrics` over HTTP/1.1, on its own listener (`--metrics-listen`):
//! the few lines of hyper that Prometheus needs, since `prometheus-client`
//! brings no server of its own. hyper is already in the tree under tonic.
//!
//! It runs on the server's own runtime, so a runtime stalled by
//! `--brew-mode blocking` stalls the scrapes too: a scrape that times out
//! is itself a sign. It answers in the OpenMetrics format when asked for it
//! (Prometheus asks), and in Prometheus's classic text format otherwise
//! (`curl`, older scrapers).
//!
//! It is for the operator's network, like a database's admin port: no
//! authentication, a time limit on reading a request, no other limit.
//! Compose publishes it on 127.0.0.1 only.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode, header};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    encoding::{prometheus_text, text},
    registry::Registry,
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};
use tracing::{debug, warn};

use super::{Metrics, rpc::RpcMetrics};

/// How long a client may take to send a request's headers before its
/// connection is closed: a socket that never speaks holds nothing for long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do after a failed `accept` (out of file descriptors, usually):
/// wait this long rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A server's metrics and where to serve them, until it starts serving.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    metrics: Metrics,
}

/// The running endpoint; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct Running(JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MetricsServer {
    /// Metrics to be served on `listener`. Call inside the server's runtime
    /// (see [`Metrics::new`]).
    pub fn new(listener: TcpListener) -> Self {
        MetricsServer {
            listener,
            metrics: Metrics::new(),
        }
    }

    /// The registry, for a server to add its collectors before it serves.
    pub fn metrics(&mut self) -> &mut Metrics {
        &mut self.metrics
    }

    /// Registers the call metrics of `service` and starts answering
    /// scrapes; they stop when the returned [`Running`] is dropped.
    pub fn start(mut self, service: &str) -> (Arc<RpcMetrics>, Running) {
        let rpc = self.metrics.rpc(service);
        let registry = self.metrics.into_registry();
        let task = tokio::spawn(serve(self.listener, registry));
        (rpc, Running(task))
    }
}

/// Accepts scrapers until aborted; each connection is a task of the set,
/// so aborting this one ends them all.
async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&registry)));
                }
                Err(error) => {
                    warn!(%error, "metrics endpoint: cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap finished connections, so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(stream: TcpStream, registry: Arc<Registry>) {
    let answer = service_fn(move |request| {
        let response = answer(&request, &registry);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), answer)
        .await;
    if let Err(error) = served {
        debug!(%error, "metrics endpoint: connection ended badly");
    }
}

/// The answer to one request: the metrics for `GET /metrics`.
fn answer(request: &Request<Incoming>, registry: &Registry) -> Response<String> {
    let plain = |status: StatusCode, text: &str| {
        let mut response = Response::new(format!("{text}\n"));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let openmetrics = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|accept| accept.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, content_type) = if openmetrics {
        (text::encode(&mut body, registry), OPENMETRICS)
    } else {
        (
            prometheus_text::encode(&mut body, registry),
            prometheus_text::CONTENT_TYPE,
        )
    };
    if encoded.is_err() {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        );
    }
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
