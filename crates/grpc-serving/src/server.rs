//! One gRPC service as every server of the café serves it: the deadline
//! and retry-hint layers, health and reflection beside the service, the
//! message size cap, the metrics endpoint (with `--metrics-listen`), and a
//! closing that the grace bounds. The connections themselves (limits,
//! HTTP/2 settings, GOAWAY, each call observed) are [`super::transport`]'s.
//!
//! [`Server::serve`] closes in this order, all within `--shutdown-grace`:
//!
//! 1. the shutdown future resolves (SIGINT or SIGTERM in the binaries), or
//!    a part the server cannot work without stops ([`super::supervision`]):
//!    then it closes the same way, and [`Server::serve`] returns the fault;
//! 2. from then on, every `UNAVAILABLE` the server answers carries a retry
//!    hint: come back once the grace is over, or go to another replica now
//!    (see [`super::retry_hint`]);
//! 3. the server's own closing steps run (the café closes its book, the
//!    barista backend its station; each turns its health `NOT_SERVING` and
//!    waits for the drinks being brewed), given the deadline the grace
//!    sets. The connections stay open meanwhile, so that every call that
//!    arrives is *answered* `UNAVAILABLE`, with the hint, rather than
//!    refused;
//! 4. the transport closes: the listener first, then GOAWAY on every
//!    connection once its client has stopped sending new calls (a
//!    second without one; after three seconds, or two seconds before the
//!    end of the grace, for a client that never stops); calls already sent are
//!    answered (a new one only once its client has read GOAWAY, so that a
//!    client that waits for its answers is quiet by then), and each
//!    connection closes after its last answer;
//! 5. at the end of the grace (or after step 3, if that used the whole
//!    grace) the calls still open are answered `UNAVAILABLE`
//!    ([`super::transport::CUT_SHORT`]), and a connection still open a
//!    moment ([`LAST_RESPONSES`]) later is dropped.
//!
//! GOAWAY comes after the closing steps, not at once, because a client
//! fails the calls it had queued when GOAWAY arrives, however gracefully
//! the server closes: `docs/performance.md`, "GOAWAY and the quiet period".

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::{net::TcpListener, time::Instant};
use tonic::{body::Body, server::NamedService, service::Routes};
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tonic_reflection::server::{v1, v1alpha};
use tracing::{info, warn};

use super::{
    StartupError,
    retry_hint::{self, RetryHintLayer},
    supervision::Critical,
    tls::ServerTls,
    transport::{Limits, Transport},
};
use crate::{
    deadline::DeadlineLayer,
    metrics::{Collector, endpoint::MetricsServer},
};

/// The least the transport gets after the closing steps, even when they used
/// the whole grace: time to send the responses they just finished.
pub const LAST_RESPONSES: Duration = Duration::from_millis(250);

/// The health name a liveness check asks about (`grpc.health.v1` Check
/// with `service: "liveness"`): SERVING for as long as the server answers
/// gRPC at all, from its start to its exit. Readiness is the empty name and
/// the service's own, which say NOT_SERVING while a café has no barista or
/// while a server closes; a liveness probe that asked those would restart
/// every café of a cluster whose baristas are down, or kill one that is
/// draining. This one fails only when the process no longer answers (its
/// runtime wedged, its threads all blocked): what a restart cures.
pub const LIVENESS: &str = "liveness";

/// What is kept of the grace, after the last GOAWAY, for the calls already
/// sent to be answered: a client that keeps sending new calls while the
/// server closes gets GOAWAY this long before the end of the grace, not at
/// its very end, when its last calls would be cut. Room for a loaded
/// machine: the client must read GOAWAY, answer its PING, and have its
/// last calls answered before the grace is over.
const LAST_CALLS: Duration = Duration::from_secs(2);

/// Binds `address`, with an error that says what to do when it is taken.
pub async fn bind(address: std::net::SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartupError::Bind { address, source })
}

/// One server's transport: its bound listener, its health, when to close,
/// the grace its closing must fit in, and its limits.
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
    limits: Limits,
    max_message_size: usize,
    /// `--tls-cert` and `--tls-key`: every connection is TLS.
    tls: Option<Arc<ServerTls>>,
    /// Said once the server serves (the binaries' "… open" line).
    on_open: Option<OnOpen>,
    /// The tasks it cannot work without: the first to stop closes it.
    critical: Critical,
}

/// What a server does once it serves: log that it is open.
pub struct OnOpen(Box<dyn FnOnce() + Send>);

impl OnOpen {
    /// Runs `said` once the server serves.
    pub fn new(said: impl FnOnce() + Send + 'static) -> Self {
        OnOpen(Box::new(said))
    }
}

impl std::fmt::Debug for OnOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnOpen")
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("grace", &self.grace)
            .field("limits", &self.limits)
            .field("tls", &self.tls.as_ref().map(|tls| tls.files()))
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server on `listener` that closes when `shutdown` resolves, within
    /// `grace`, and bounds its connections by `limits`; requests larger
    /// than `max_message_size` bytes are refused.
    pub fn new(
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
        limits: Limits,
        max_message_size: usize,
    ) -> Self {
        Server {
            listener,
            // Starts with the server as a whole (`""`) SERVING; the service
            // sets its own status by name.
            health: HealthReporter::new(),
            shutdown: Box::pin(shutdown),
            grace,
            limits,
            max_message_size,
            metrics: None,
            tls: None,
            on_open: None,
            critical: Critical::new(),
        }
    }

    /// The parts the server cannot work without: run each task of the
    /// kind inside [`Critical::watch`], and its panic or early end closes
    /// the server ([`Server::serve`] returns [`StartupError::Fault`]).
    pub fn critical(&self) -> Critical {
        self.critical.clone()
    }

    /// Runs `on_open` once the server serves: its service and everything it
    /// needed before (a store, its health) are up, and the connections
    /// are being taken. Not run when starting fails.
    pub fn on_open(mut self, on_open: OnOpen) -> Self {
        self.on_open = Some(on_open);
        self
    }

    /// Serves every connection over TLS with `tls` (see [`super::tls`]);
    /// the metrics endpoint stays plain HTTP.
    pub fn with_tls(mut self, tls: Arc<ServerTls>) -> Self {
        self.tls = Some(tls);
        self
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

    /// `--max-message-size`: each server sets it on its own service
    /// (`CafeServer::max_decoding_message_size`), as tonic's generated
    /// servers take it one by one; health and reflection get it here.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Serves `service` (with health and reflection beside it, reflection
    /// and metrics reading its methods from `descriptors`, its encoded
    /// descriptor set) until told to close, then runs `closing` with the deadline the grace sets and
    /// closes the transport by that deadline (see the module docs for the
    /// order). `closing` keeps to the deadline itself (waiting with
    /// `tokio::time::timeout_at`), so that it can still act when the grace
    /// is over: the café fails the drinks left unfinished.
    pub async fn serve<S, C, F>(
        self,
        service: S,
        descriptors: &'static [u8],
        closing: C,
    ) -> Result<(), StartupError>
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
        let (reflection_v1, reflection_v1alpha) =
            reflection(S::NAME, descriptors, self.max_message_size)?;
        // Never changed after this: see [`LIVENESS`].
        self.health
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        let health = HealthServer::new(HealthService::from_health_reporter(self.health))
            .max_decoding_message_size(self.max_message_size);
        let routes = Routes::new(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .prepare();
        let (closing_starts, closing_at) = retry_hint::closing();
        // The metrics endpoint answers until this function returns (its
        // guard is dropped then), closing included: an operator sees the
        // drain.
        let (rpc_metrics, _metrics_endpoint) = self
            .metrics
            .map(|metrics| metrics.start(S::NAME, descriptors))
            .unzip();
        // Outside these layers, the transport watches every call (see
        // `calls::ServedCalls`), so it sees each call's final status, the
        // deadline's and retry hint's included: timed by method and status
        // code, and in a server span, child of the caller's span when the
        // request carries a `traceparent`, its trace id in `x-trace-id`.
        let stack = tower::ServiceBuilder::new()
            // Callers get DEADLINE_EXCEEDED (not tonic's CANCELLED) when their
            // deadline passes, and handlers see it (see `crate::deadline`).
            .layer(DeadlineLayer)
            // While closing, UNAVAILABLE says when to come back.
            .layer(RetryHintLayer(closing_at))
            .service(routes);
        // The connections are served in a task of their own, so that
        // closing can go on beside them: calls keep being answered while the
        // server closes.
        let transport = Transport::start(self.listener, stack, rpc_metrics, self.limits, self.tls);
        if let Some(OnOpen(said)) = self.on_open {
            said();
        }

        // Whichever comes first: told to close, or a part died. Either way
        // parts may end from here on (a barista's shift is over).
        let fault = tokio::select! {
            () = self.shutdown => None,
            fault = self.critical.first_fault() => Some(fault),
        };
        self.critical.closing();

        let deadline = Instant::now() + self.grace;
        // Nobody needs to come back before the transport's last moment.
        closing_starts.starts(deadline + LAST_RESPONSES);
        closing(deadline).await;

        // GOAWAY once each client is quiet (or a little later), by the end
        // of the grace at the latest; then what is left of the grace for
        // the last answers. At its end the calls still open are answered
        // UNAVAILABLE, given a moment to be sent (as the retry hint said),
        // and what is still open then is dropped.
        let cut_at = deadline.max(Instant::now());
        let goaway_by = deadline - self.grace.min(LAST_CALLS);
        let dropped = transport
            .close(goaway_by, cut_at, cut_at + LAST_RESPONSES)
            .await;
        if dropped > 0 {
            warn!(
                dropped,
                "shutdown grace over with connections still open: closed them"
            );
        }
        info!("closed");
        match fault {
            Some(fault) => Err(fault.into()),
            None => Ok(()),
        }
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
    descriptors: &'static [u8],
    max_message_size: usize,
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    StartupError,
> {
    let builder = |itself: &str| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptors)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name(itself)
    };
    let current = builder("grpc.reflection.v1.ServerReflection")
        .build_v1()?
        .max_decoding_message_size(max_message_size);
    let older = builder("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()?
        .max_decoding_message_size(max_message_size);
    Ok((current, older))
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use std::net::SocketAddr;

    use futures::Stream;
    use tokio::sync::oneshot;
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::ServerFlags;
    use cafe_domain::proto::{
        FILE_DESCRIPTOR_SET,
        v1::{
            BrewEvent, BrewRequest, GetStationRequest, Station,
            barista_server::{Barista, BaristaServer},
        },
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

        async fn get_station(
            &self,
            _: Request<GetStationRequest>,
        ) -> Result<Response<Station>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    /// The limits the servers of these tests run with: the flags' defaults.
    fn limits() -> Limits {
        ServerFlags::<TestEnv>::default().limits()
    }

    #[derive(Debug, Clone)]
    enum TestEnv {}

    impl crate::ServerEnv for TestEnv {
        const PREFIX: &'static str = "TEST";
        const LISTEN: &'static str = "127.0.0.1:0";
        const SHUTDOWN_GRACE_HELP: &'static str = "";
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
        let server = Server::new(listener, closed, Duration::from_secs(1), limits(), 4096);
        tokio::spawn(server.serve(
            BaristaServer::new(Refuses),
            FILE_DESCRIPTOR_SET,
            |_deadline| async {},
        ));
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
        assert_eq!(limit, limits().max_streams_per_connection as usize);
    }
}
