//! The transport around one gRPC service, as every server of the café runs
//! it: HTTP/2 settings chosen on purpose, the metrics, tracing and deadline
//! layers, health and reflection beside the service, the metrics endpoint
//! (with `--metrics-listen`), and a shutdown that the grace bounds.
//!
//! [`Server::serve`] closes in this order, all within `--shutdown-grace`:
//!
//! 1. the shutdown future resolves (SIGINT or SIGTERM in the binaries);
//! 2. the server's own closing steps run (the café closes its book, the
//!    barista backend its station; each turns its health `NOT_SERVING` and
//!    waits for the drinks being brewed), given the deadline the grace
//!    sets;
//! 3. the transport shuts down: no new connections, open calls finish;
//! 4. if it is still open when the grace is over (at least a moment after
//!    step 2, to send the last responses), its connections are dropped.
//!
//! tonic's own graceful shutdown waits for every open stream to end, however
//! long that takes; the grace is what bounds it.

use std::{convert::Infallible, future::Future, net::SocketAddr, pin::Pin, time::Duration};

use tokio::{net::TcpListener, sync::oneshot, task::JoinError, time::Instant};
use tonic::{
    body::Body,
    server::NamedService,
    transport::{self, server::TcpIncoming},
};
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tonic_reflection::server::{v1, v1alpha};
use tracing::{info, warn};

use super::StartupError;
use crate::{
    deadline::DeadlineLayer,
    metrics::{Collector, endpoint::MetricsServer, rpc::RpcMetricsLayer},
    propagation::GrpcServerTraceLayer,
    proto::FILE_DESCRIPTOR_SET,
};

// The HTTP/2 settings, chosen for what the café's calls are: many small
// messages, streams that stay open for minutes (a buzzer waiting for a pot
// of tea), and a load generator keeping 10,000 orders in flight over a few
// connections. The defaults they replace (tonic over hyper): no keepalive,
// no limit on streams, 1 MiB windows.

/// How long a connection may stay silent before the server pings it: a
/// buzzer's stream can be silent for minutes, and a client that vanished
/// without closing (laptop shut, network gone) would otherwise hold its
/// calls and their orders' watchers until TCP gives up, hours later. Pings
/// also keep idle-timeout proxies from cutting a live connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a ping may go unanswered before the connection is closed. A
/// live peer answers at once; a server whose runtime is stalled longer than
/// this (`--brew-mode blocking` at real time) may miss the answer and drop
/// its connections, one more cost of blocking the runtime.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Most calls open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`):
/// a bound on what one client can make the server hold (each call is a task
/// and often an order), far above the 10,000 a load test keeps in flight on
/// one connection. Past it a client's calls wait for a free stream; they are
/// not refused.
const MAX_STREAMS_PER_CONNECTION: u32 = 16_384;
/// What one call may send before the server reads it: every request is one
/// message under 1 KiB, so the HTTP/2 default (64 KiB) holds it many times
/// over.
const STREAM_WINDOW: u32 = 64 * 1024;
/// What all the calls of one connection may send before the server reads
/// them: 10,000 requests sent at once (about 1 MB with framing) arrive
/// without waiting for window updates, and one connection can pin at most
/// this much unread request data.
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// The least the transport gets after the closing steps, even when they used
/// the whole grace: time to send the responses they just finished.
const LAST_RESPONSES: Duration = Duration::from_millis(100);

/// Binds `address`, with an error that says what to do when it is taken.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartupError::Bind { address, source })
}

/// One server's transport: its bound listener, its health, when to close,
/// and the grace its closing must fit in.
/// [`Application::serve`](super::Application::serve) makes it and hands it
/// to the server's [`Serve`](super::Serve) implementation, which sets its
/// health and then calls [`Server::serve`].
pub struct Server {
    listener: TcpListener,
    health: HealthReporter,
    /// Boxed (once per server) so that `Server` needs no type parameter for
    /// whoever tells it to close: a signal, a test's channel.
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    grace: Duration,
    /// The metrics and their endpoint, with `--metrics-listen`.
    metrics: Option<MetricsServer>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server on `listener` that closes when `shutdown` resolves, within
    /// `grace`.
    pub fn new(
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Self {
        Server {
            listener,
            // Starts with the server as a whole (`""`) SERVING; the service
            // sets its own status by name.
            health: HealthReporter::new(),
            shutdown: Box::pin(shutdown),
            grace,
            metrics: None,
        }
    }

    /// Also serves metrics for Prometheus on `listener` (`--metrics-listen`),
    /// from when [`Server::serve`] starts until it returns.
    pub fn with_metrics(mut self, listener: TcpListener) -> Self {
        self.metrics = Some(MetricsServer::new(listener));
        self
    }

    /// Adds the server's own gauges, read at every scrape (see
    /// [`crate::metrics`]). Without `--metrics-listen` the collector is
    /// dropped: nothing would ever ask it.
    pub fn register_collector(&mut self, collector: impl Collector) {
        if let Some(metrics) = &mut self.metrics {
            metrics.metrics().register_collector(collector);
        }
    }

    /// The server's health, served as `grpc.health.v1.Health`. Clones share
    /// the statuses: hand one to whatever decides them.
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serves `service` (with health and reflection beside it) until told
    /// to close, then runs `closing` with the deadline the grace sets and
    /// shuts the transport down by that deadline (see the module docs for
    /// the order). `closing` keeps to the deadline itself (waiting with
    /// `tokio::time::timeout_at`), so that it can still act when the grace
    /// is over: the café fails the drinks left unfinished.
    pub async fn serve<S, C, F>(self, service: S, closing: C) -> Result<(), StartupError>
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        C: FnOnce(Instant) -> F,
        F: Future<Output = ()>,
    {
        let (reflection_v1, reflection_v1alpha) = reflection(S::NAME)?;
        // The metrics endpoint answers until this function returns (its
        // guard is dropped then), closing included: an operator sees the
        // drain.
        let (rpc_metrics, _metrics_endpoint) =
            self.metrics.map(|metrics| metrics.start(S::NAME)).unzip();
        // Sending on (or dropping) `stop_transport` starts the transport's
        // graceful shutdown; dropping it too means a `serve` future dropped
        // half-way does not leave the transport running on its own.
        let (stop_transport, transport_stopped) = oneshot::channel::<()>();
        // TCP_NODELAY: tiny buzzer events go out at once, not held back by Nagle's algorithm.
        // (Set on the incoming: tonic's `tcp_nodelay` only applies to addresses it binds.)
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let transport = transport::Server::builder()
            // Silent for minutes is normal for a buzzer: pings find clients that vanished.
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            // A live peer answers a ping at once; one silent this long is gone, its calls end.
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            // Bounds what one client can pin, far above the 10,000 calls a load test keeps open.
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            // A request is one message under 1 KiB: the HTTP/2 default window holds many.
            .initial_stream_window_size(STREAM_WINDOW)
            // Shared by all calls: 10,000 requests at once (~1 MB) need no wait for updates.
            .initial_connection_window_size(CONNECTION_WINDOW)
            // Fixed windows: BDP probing is for bulk transfers, and would reset both to 64 KiB.
            .http2_adaptive_window(Some(false))
            // Outermost, so it sees every call's final status (the deadline
            // layer's included): each call timed by method and status code.
            .layer(RpcMetricsLayer::new(rpc_metrics))
            // Every call gets a server span, child of the caller's span when
            // the request carries a `traceparent` (health and reflection
            // calls excepted), and its trace id back in `x-trace-id`.
            .layer(GrpcServerTraceLayer)
            // Callers get DEADLINE_EXCEEDED (not tonic's CANCELLED) when their
            // deadline passes, and handlers see it (see `crate::deadline`).
            .layer(DeadlineLayer)
            .add_service(HealthServer::new(HealthService::from_health_reporter(
                self.health,
            )))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = transport_stopped.await;
            });
        // The transport runs in its own task so that closing can go on
        // beside it: open calls keep being answered while the server closes.
        let mut transport = tokio::spawn(transport);

        tokio::select! {
            () = self.shutdown => {}
            // The transport should only end when told to; if it fails, say why.
            finished = &mut transport => return ended(finished),
        }

        let deadline = Instant::now() + self.grace;
        closing(deadline).await;

        let _ = stop_transport.send(());
        // Give the transport what is left of the grace (at least a moment to
        // send the last responses), then stop waiting for it.
        let transport_deadline = deadline.max(Instant::now() + LAST_RESPONSES);
        match tokio::time::timeout_at(transport_deadline, &mut transport).await {
            Ok(finished) => ended(finished)?,
            Err(_) => {
                warn!("shutdown grace over with connections still open: closing them");
                transport.abort();
            }
        }
        info!("closed");
        Ok(())
    }
}

/// What the transport's task ended with: its error, or its panic passed on
/// to the caller as if it had happened here. A task can also end cancelled:
/// that only happens when its runtime shuts down under it (a test dropping
/// its runtime, a process exiting), and there is nothing left to serve or
/// report then. (`JoinError::into_panic` would itself panic on that.)
fn ended(finished: Result<Result<(), transport::Error>, JoinError>) -> Result<(), StartupError> {
    match finished {
        Ok(result) => result.map_err(StartupError::from),
        Err(join_error) if join_error.is_panic() => {
            std::panic::resume_unwind(join_error.into_panic())
        }
        Err(_cancelled) => Ok(()),
    }
}

/// Marks service `S` `NOT_SERVING`, and the server as a whole (the empty
/// name, what a health check that names no service asks about): whoever
/// watches its health (a load balancer, the café) stops sending it work.
pub async fn not_serving<S: NamedService>(health: &HealthReporter) {
    health.set_not_serving::<S>().await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

/// Server reflection for a server of `service` (e.g. `cafe.v1.Cafe`), in
/// both versions: v1 for current tools, v1alpha for older grpcurl and
/// friends. It advertises only what such a server serves (the descriptor set
/// holds both `Cafe` and `Barista`) plus health and itself, and knows
/// `google.rpc` so tools can decode the `BadRequest` details of errors.
fn reflection(
    service: &str,
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    StartupError,
> {
    let builder = |itself: &str| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name(itself)
    };
    let current = builder("grpc.reflection.v1.ServerReflection").build_v1()?;
    let older = builder("grpc.reflection.v1alpha.ServerReflection").build_v1alpha()?;
    Ok((current, older))
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use futures::Stream;
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::proto::v1::{
        BrewEvent, BrewRequest,
        barista_server::{Barista, BaristaServer},
    };

    /// A service that refuses every call: these tests are about the
    /// transport around it.
    struct Refuses;

    #[tonic::async_trait]
    impl Barista for Refuses {
        type BrewStream = Pin<Box<dyn Stream<Item = Result<BrewEvent, Status>> + Send>>;

        async fn brew(
            &self,
            _: Request<BrewRequest>,
        ) -> Result<Response<Self::BrewStream>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    /// Starts a server of [`Refuses`] on port 0; it closes when the returned
    /// sender is used or dropped.
    async fn start() -> (SocketAddr, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let closed = async {
            let _ = stopped.await;
        };
        let server = Server::new(listener, closed, Duration::from_secs(1));
        tokio::spawn(server.serve(BaristaServer::new(Refuses), |_deadline| async {}));
        (addr, stop)
    }

    #[tokio::test]
    async fn one_connection_may_carry_ten_thousand_calls() {
        let (addr, _stop) = start().await;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);

        // Until the server's SETTINGS arrive the client assumes no limit, so
        // one call's answer is awaited first: the server sends its SETTINGS
        // before anything else.
        let mut client = client.ready().await.unwrap();
        let request = http::Request::post(format!("http://{addr}/cafe.v1.Barista/Brew"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        response.await.unwrap();

        let limit = client.current_max_send_streams();
        assert!(limit >= 10_000, "the server allows {limit} calls at once");
        assert_eq!(limit, MAX_STREAMS_PER_CONNECTION as usize);
    }
}
