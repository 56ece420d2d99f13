//! Test helpers: start a real café on `127.0.0.1:0` in this process and talk
//! to it over real gRPC.
//!
//! Every test gets its own server on its own port, so tests run in parallel
//! without sharing state. Nothing sleeps to synchronise: the listener is
//! bound before the server task starts, so a client can connect at once.
//! Set `TEST_LOG=1` to see the servers' logs.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

pub mod barista;
pub mod otlp;

use std::{net::SocketAddr, time::Duration};

use cafe::serving::StartupError;
use cafe::{
    menu::TimeScale,
    propagation::{self, GrpcClientTrace},
    proto::v1::cafe_server::SERVICE_NAME as CAFE_SERVICE,
    proto::v1::{OrderEvent, OrderRequest, OrderStatus, Size, cafe_client::CafeClient},
    telemetry::{self, LogFormat, TelemetryConfig},
};
use cafe_server::Application;
pub use cafe_server::Config;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Streaming, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Far more than any wait in the tests should take, even on a loaded machine.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A time scale under which a medium latte (40 s at scale 1) takes 200 ms.
pub const FAST: f64 = 0.005;

/// A café running in this process.
pub struct TestCafe {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client connected to it.
    pub client: CafeClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), StartupError>>,
}

/// The default configuration with fast brewing, for tests.
pub fn fast_config() -> Config {
    Config {
        time_scale: TimeScale::new(FAST).unwrap(),
        ..Config::default()
    }
}

/// Starts a café with `config` (its `listen` is ignored: port 0 is used).
pub async fn spawn_cafe(config: Config) -> TestCafe {
    init_test_log();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let app = Application::with_listener(config, listener);
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        // Resolves when `stop` is used or dropped.
        let _ = stopped.await;
    }));
    let client = connect(addr).await;
    TestCafe {
        addr,
        client,
        stop: Some(stop),
        server,
    }
}

/// A new client (with its own connection) to the café at `addr`.
pub async fn connect(addr: SocketAddr) -> CafeClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the test café");
    CafeClient::new(channel)
}

/// A café brewing on the remote baristas at `urls` (fast menu times, as
/// reported by GetMenu; the baristas brew at their own time scale).
pub fn remote_config(urls: &[String]) -> Config {
    Config {
        barista_endpoints: urls.iter().map(|url| url.parse().unwrap()).collect(),
        ..fast_config()
    }
}

impl TestCafe {
    /// Waits, on the café's health Watch stream, until its health says
    /// `want`, failing the test after `limit`.
    pub async fn wait_for_health(&self, want: ServingStatus, limit: Duration) {
        let channel = Channel::from_shared(self.url()).unwrap().connect_lazy();
        let mut health = HealthClient::new(channel);
        let watching = async {
            let mut statuses = health
                .watch(HealthCheckRequest {
                    service: CAFE_SERVICE.to_owned(),
                })
                .await
                .expect("the café's health Watch")
                .into_inner();
            while let Some(update) = statuses.message().await.expect("health stream") {
                if update.status == want as i32 {
                    return;
                }
            }
            panic!("the health stream ended before {want:?}");
        };
        tokio::time::timeout(limit, watching)
            .await
            .unwrap_or_else(|_| panic!("the café's health was not {want:?} within {limit:?}"));
    }

    /// The café's URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Orders `drink` for `customer` with a buzzer, and returns its stream.
    pub async fn buzzer(&mut self, customer: &str, drink: &str) -> Streaming<OrderEvent> {
        self.client
            .order_with_buzzer(order(customer, drink))
            .await
            .expect("the order is taken")
            .into_inner()
    }

    /// Sends the shutdown signal (like SIGTERM) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Sends the shutdown signal and waits for the server to stop, failing
    /// the test if it takes longer than `limit`. Returns how long it took.
    pub async fn shutdown_within(mut self, limit: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        self.begin_shutdown();
        tokio::time::timeout(limit, &mut self.server)
            .await
            .expect("the café did not stop in time")
            .expect("the server task panicked")
            .expect("the server failed");
        started.elapsed()
    }
}

/// A client to the café at `addr` whose calls are traced and carry the
/// trace context, as the `cafe` CLI's are.
pub async fn connect_traced(addr: SocketAddr) -> CafeClient<GrpcClientTrace<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the test café");
    CafeClient::new(propagation::traced(channel))
}

/// The status an event reports.
pub fn status_of(event: &OrderEvent) -> OrderStatus {
    OrderStatus::try_from(event.order.as_ref().unwrap().status).unwrap()
}

/// Reads a buzzer until its order is BREWING (within [`LIMIT`]) and returns
/// that event.
pub async fn until_brewing(buzzer: &mut Streaming<OrderEvent>) -> OrderEvent {
    loop {
        let event = tokio::time::timeout(LIMIT, buzzer.message())
            .await
            .expect("BREWING in time")
            .expect("the stream is OK")
            .expect("the stream goes on until the order ends");
        if status_of(&event) == OrderStatus::Brewing {
            return event;
        }
    }
}

/// An order request for `drink` in medium.
pub fn order(customer: &str, drink: &str) -> OrderRequest {
    OrderRequest {
        customer: customer.into(),
        drink: drink.into(),
        size: Size::Medium as i32,
        request_id: String::new(),
    }
}

/// The console filter for a test's own telemetry stack: silent (the spans
/// still reach the collector), unless `TEST_LOG` asks to see the logs.
pub fn test_console_filter() -> &'static str {
    if std::env::var_os("TEST_LOG").is_some() {
        "info"
    } else {
        "off"
    }
}

/// Logs to the test output when `TEST_LOG` is set; silent otherwise.
pub(crate) fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let telemetry = telemetry::init(&TelemetryConfig {
            service_name: "test",
            log_format: LogFormat::Text,
            default_filter: "debug,h2=info,hyper=info,tower=info",
            otlp_endpoint: None,
        });
        // Kept for the whole test process (the subscriber is global too);
        // nothing is exported, so there is nothing to flush.
        std::mem::forget(telemetry);
    }
}
