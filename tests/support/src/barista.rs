//! Test helpers for the barista backend: a real `cafe-barista` server on
//! its own tokio runtime, so a test can kill it like a crashed process.
//!
//! [`TestBarista::kill`] shuts that runtime down at once: every task of the
//! server dies, its connections included, so the café sees exactly what it
//! would see if the process were killed, with no in-process shortcut.

use std::{net::SocketAddr, time::Duration};

use cafe_barista::{Application, Config};
use cafe_domain::{
    menu::TimeScale,
    proto::v1::{BrewRequest, Size, barista_client::BaristaClient},
};
use grpc_serving::StartupError;
use tokio::{net::TcpSocket, runtime::Runtime, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

use crate::{FAST, init_test_log};

/// A barista backend running on its own runtime.
pub struct TestBarista {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its metrics are served, if its config asked for them
    /// (`metrics_listen` set: its port is chosen here).
    pub metrics_addr: Option<SocketAddr>,
    runtime: Option<Runtime>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartupError>>>,
}

/// A barista configuration for tests: fast brewing and a replica `name`.
pub fn barista_config(name: &str, baristas: u16) -> Config {
    Config {
        name: name.to_owned(),
        baristas,
        time_scale: TimeScale::new(FAST).unwrap(),
        ..Config::default()
    }
}

/// Starts a barista backend with `config` on a free port.
pub fn spawn_barista(config: Config) -> TestBarista {
    spawn_barista_at(config, SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Starts a barista backend with `config` on `addr` (to bring one back
/// where the café expects it).
pub fn spawn_barista_at(config: Config, addr: SocketAddr) -> TestBarista {
    start(config, addr, None)
}

/// Starts a barista backend whose spans go to `dispatch` (a telemetry stack
/// of its own, from `grpc_telemetry::build`, as a separate `barista`
/// process would have), not to the test's.
pub fn spawn_traced_barista(config: Config, dispatch: tracing::Dispatch) -> TestBarista {
    start(
        config,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Some(dispatch),
    )
}

fn start(config: Config, addr: SocketAddr, dispatch: Option<tracing::Dispatch>) -> TestBarista {
    init_test_log();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(dispatch) = dispatch {
        // Every thread of this runtime (its worker and any blocking thread)
        // reports to `dispatch`, for as long as the thread lives: the guard
        // is forgotten, so the thread's default is never reset.
        builder.on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        });
    }
    let runtime = builder
        .worker_threads(1)
        .thread_name("test-barista")
        .enable_all()
        .build()
        .expect("a runtime for the barista");
    // Sockets are registered with the runtime they are created in.
    let listener = {
        let _inside = runtime.enter();
        let socket = TcpSocket::new_v4().expect("a socket");
        // SO_REUSEADDR, as every server sets it: bind again at once where a
        // killed barista listened.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(addr).expect("bind the barista's address");
        socket.listen(1024).expect("listen")
    };
    let wants_metrics = config.server.metrics_listen.is_some();
    let tls = crate::server_tls(&config.server);
    let mut app = Application::with_listener(config, listener);
    if let Some(tls) = tls {
        app = app.with_tls(tls);
    }
    if wants_metrics {
        let _inside = runtime.enter();
        let metrics = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        metrics
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let metrics = tokio::net::TcpListener::from_std(metrics).expect("a tokio listener");
        app = app.with_metrics_listener(metrics);
    }
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = runtime.spawn(app.serve(async {
        let _ = stopped.await;
    }));
    TestBarista {
        addr,
        metrics_addr,
        runtime: Some(runtime),
        stop: Some(stop),
        server: Some(server),
    }
}

/// A free port on 127.0.0.1, for a barista that is not there yet. (Bound and
/// let go at once; nothing else in these tests binds fixed ports.)
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("an address")
}

impl TestBarista {
    /// The barista's URL, as the café's `--barista-endpoint` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of its `Barista` service.
    pub async fn client(&self) -> BaristaClient<Channel> {
        let channel = Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect to the test barista");
        BaristaClient::new(channel)
    }

    /// Kills it like a crashed process: every task and connection ends now.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Shuts it down gracefully, failing the test if that takes longer
    /// than `limit`.
    pub async fn shutdown_within(mut self, limit: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().expect("started");
        tokio::time::timeout(limit, server)
            .await
            .expect("the barista did not stop in time")
            .expect("the server task panicked")
            .expect("the server failed");
    }
}

impl Drop for TestBarista {
    fn drop(&mut self) {
        // Dropping a runtime inside async code would panic; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A brew request for a medium `drink`.
pub fn brew_request(order_id: &str, drink: &str) -> BrewRequest {
    BrewRequest {
        order_id: order_id.into(),
        drink: drink.into(),
        size: Size::Medium as i32,
    }
}
