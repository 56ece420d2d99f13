//! A real café (`cafe-server`'s [`Application`]) on `127.0.0.1:0`, in the
//! test's own runtime.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cafe_domain::{
    menu::TimeScale,
    proto::v1::cafe_server::SERVICE_NAME as CAFE_SERVICE,
    proto::v1::{OrderEvent, cafe_client::CafeClient},
};
use cafe_server::Application;
pub use cafe_server::Config;
use grpc_serving::{StartupError, tls::ServerTls};
use tokio::{
    net::{TcpListener, TcpSocket},
    runtime::Runtime,
    sync::oneshot,
    task::JoinHandle,
};
use tonic::{Streaming, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{FAST, connect, init_test_log, order};

/// A café running in this process.
pub struct TestCafe {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client connected to it.
    pub client: CafeClient<Channel>,
    /// Where its metrics are served, if its config asked for them
    /// ([`with_metrics`]).
    pub metrics_addr: Option<SocketAddr>,
    /// Its TLS, if its config has `--tls-cert` (reload it to renew).
    pub tls: Option<Arc<ServerTls>>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), StartupError>>,
}

/// The default configuration with fast brewing, for tests.
pub fn fast_config() -> Config {
    config_at_scale(FAST)
}

/// The default configuration with every brew time multiplied by `scale`
/// (`--time-scale`): at 0.05 a medium latte takes 2 s.
pub fn config_at_scale(scale: f64) -> Config {
    Config {
        time_scale: TimeScale::new(scale).expect("a positive time scale"),
        ..Config::default()
    }
}

/// `config` with its metrics served (on a port of their own, chosen by
/// [`spawn_cafe`]).
pub fn with_metrics(mut config: Config) -> Config {
    config.server.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config
}

/// Starts a café with `config` (its `listen` is ignored: port 0 is used;
/// so is `metrics_listen`'s port, if set). With TLS in its flags it serves
/// TLS, and its `client`, plaintext, is answered that it must use TLS.
pub async fn spawn_cafe(config: Config) -> TestCafe {
    init_test_log();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let wants_metrics = config.server.metrics_listen.is_some();
    let tls = crate::server_tls(&config.server);
    let mut app = Application::with_listener(config, listener);
    if let Some(tls) = &tls {
        app = app.with_tls(Arc::clone(tls));
    }
    if wants_metrics {
        let metrics = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        app = app.with_metrics_listener(metrics);
    }
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        // Resolves when `stop` is used or dropped.
        let _ = stopped.await;
    }));
    let client = connect(addr).await;
    TestCafe {
        addr,
        client,
        metrics_addr,
        tls,
        stop: Some(stop),
        server,
    }
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

    /// Scrapes the café's `/metrics` (it must have been started
    /// [`with_metrics`]).
    pub async fn scrape(&self) -> crate::metrics::Scrape {
        let addr = self.metrics_addr.expect("a café started with_metrics");
        crate::metrics::scrape(addr).await
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

/// A café on a runtime of its own, so a test can kill it like a crashed
/// process (every task and connection ends at once, nothing is flushed)
/// and start another where it was, on the same order store.
pub struct KillableCafe {
    /// Where it listens.
    pub addr: SocketAddr,
    runtime: Option<Runtime>,
}

/// Starts a café with `config` on `addr` (port 0 for any), on its own
/// runtime.
pub fn spawn_killable_cafe(config: Config, addr: SocketAddr) -> KillableCafe {
    init_test_log();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("test-cafe")
        .enable_all()
        .build()
        .expect("a runtime for the café");
    // Sockets are registered with the runtime they are created in.
    let listener = {
        let _inside = runtime.enter();
        let socket = TcpSocket::new_v4().expect("a socket");
        // SO_REUSEADDR, as every server sets it: bind again at once where a
        // killed café listened.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(addr).expect("bind the café's address");
        socket.listen(1024).expect("listen")
    };
    let app = Application::with_listener(config, listener);
    let addr = app.local_addr();
    runtime.spawn(app.serve(std::future::pending()));
    KillableCafe {
        addr,
        runtime: Some(runtime),
    }
}

impl KillableCafe {
    /// The café's URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills it: its runtime stops at once, with every task on it, and
    /// this returns once they are dropped (its listener closed), so another
    /// café can bind its address. It blocks: call it from a blocking thread
    /// (`spawn_blocking`), not from async code.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

impl Drop for KillableCafe {
    fn drop(&mut self) {
        // Dropping a runtime inside async code would panic; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
