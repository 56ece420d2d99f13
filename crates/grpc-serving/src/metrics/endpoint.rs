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
//! authentication. What a stray client can hold is bounded all the same: a
//! request's head must arrive within 10 s (which also closes a kept-alive
//! connection left idle that long: a scraper just opens a new one), a
//! connection lives at most a minute (a client that does not read its
//! answer), and at most 64 are open at once. Compose publishes it on 127.0.0.1
//! only.

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
/// connection is closed: a socket that never speaks, or a kept-alive one
/// with no next request, holds nothing for long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one connection may stay open, whatever it does: past it, an
/// idle connection is closed at once and a busy one after its answer (a
/// client that never reads its answer would hold it for ever otherwise).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The most connections open at once; past it, a new one is closed
/// unanswered. A Prometheus server or two needs one each.
const MAX_CONNECTIONS: usize = 64;

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

    /// Registers the call metrics of `service` (described in the encoded
    /// descriptor set `descriptors`) and starts answering scrapes; they
    /// stop when the returned [`Running`] is dropped.
    pub fn start(mut self, service: &str, descriptors: &[u8]) -> (Arc<RpcMetrics>, Running) {
        let rpc = self.metrics.rpc(service, descriptors);
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
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        debug!(%peer, "metrics endpoint: too many connections, closing a new one");
                        continue; // dropping the stream closes it
                    }
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
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), answer);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {
            // Closes it now if idle, after the answer if a scrape is under way.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
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

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        time::Instant,
    };

    use std::net::SocketAddr;

    use super::*;

    async fn start() -> (SocketAddr, Running) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_rpc, running) = MetricsServer::new(listener)
            .start("cafe.v1.Cafe", cafe_domain::proto::FILE_DESCRIPTOR_SET);
        (addr, running)
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_header_timeout() {
        let (addr, _running) = start().await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let connected = Instant::now();
        until_closed(&mut silent).await;
        let open = connected.elapsed();
        assert!(
            open >= HEADER_READ_TIMEOUT && open < CONNECTION_LIFETIME,
            "closed after {open:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_is_answered_then_closed_when_idle() {
        let (addr, _running) = start().await;
        let mut kept = TcpStream::connect(addr).await.unwrap();
        let connected = Instant::now();
        kept.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut kept).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("tokio_alive_tasks"));
        // No next request: closed as a silent connection is.
        let open = connected.elapsed();
        assert!(
            open >= HEADER_READ_TIMEOUT && open < CONNECTION_LIFETIME,
            "closed after {open:?}"
        );
    }

    #[tokio::test]
    async fn past_the_limit_new_connections_are_closed_unanswered() {
        let (addr, _running) = start().await;
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // Once the server has taken them all, one more is closed at once.
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .await;
        let answer = tokio::time::timeout(HEADER_READ_TIMEOUT / 2, until_closed(&mut extra))
            .await
            .expect("closed at once");
        assert_eq!(answer, "", "unanswered");
        // When one goes, a scraper gets in again.
        drop(held.pop());
        let mut scraper = loop {
            let mut scraper = TcpStream::connect(addr).await.unwrap();
            scraper
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let answer = until_closed(&mut scraper).await;
            if answer.starts_with("HTTP/1.1 200") {
                break scraper;
            }
            // The server had not reaped the dropped one yet.
            tokio::task::yield_now().await;
        };
        let _ = scraper.shutdown().await;
    }
}
