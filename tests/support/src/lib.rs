//! `cafe-testkit`: what the tests of every crate use to start real servers
//! on `127.0.0.1:0` in their own process and talk to them over real gRPC.
//!
//! Every test gets its own server on its own port, so tests run in parallel
//! without sharing state. Nothing sleeps to synchronise: the listener is
//! bound before the server task starts, so a client can connect at once.
//! Set `TEST_LOG=1` to see the servers' logs.
//!
//! # Layout
//! - this root: clients, order requests, reading a buzzer (to its end, or
//!   until BREWING), test logs, and a server's refused flags;
//! - [`faultproxy`]: a TCP proxy that cuts the link to a database and
//!   restores it;
//! - [`child_log`]: the JSON log of a server run as a real process;
//! - [`process`]: a server binary run as a real process (signals, crashes,
//!   restarts on the same files), any binary started without the
//!   developer's `CAFE_*`/`OTEL_*` settings, and a small disk to fill;
//! - `cafe` (feature `cafe`): `spawn_cafe` and its configs, and
//!   `spawn_killable_cafe`, on a runtime of its own to crash it;
//! - `barista` (feature `barista`): `spawn_barista`, on a runtime of its
//!   own so a test can kill it like a crashed process;
//! - [`tls`]: a private CA made at run time, and the certificates it signs;
//! - [`otlp`]: a real OTLP collector, to assert on the spans that arrive;
//! - [`metrics`]: a server's `/metrics` scraped over HTTP, and its values;
//! - `postgres` (feature `postgres`): a fresh PostgreSQL database per test,
//!   from `CAFE_TEST_DATABASE_URL`, or a "skipped" line where it is unset.
//!
//! A crate's tests turn on the servers they need, so the barista's tests do
//! not build the café, nor the café's the barista.

#[cfg(feature = "barista")]
pub mod barista;
#[cfg(feature = "cafe")]
pub mod cafe;
pub mod child_log;
pub mod faultproxy;
pub mod metrics;
pub mod otlp;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod process;
pub mod tls;

#[cfg(feature = "cafe")]
pub use cafe::{
    Config, KillableCafe, TestCafe, config_at_scale, fast_config, remote_config, spawn_cafe,
    spawn_killable_cafe, with_metrics,
};

use std::{net::SocketAddr, time::Duration};

use cafe_domain::proto::v1::{
    OrderEvent, OrderRequest, OrderStatus, Size, cafe_client::CafeClient,
};
use grpc_telemetry::{
    self as telemetry, LogFormat, TelemetryConfig,
    propagation::{self, GrpcClientTrace},
};
use tonic::{Streaming, transport::Channel};

/// Far more than any wait in the tests should take, even on a loaded machine.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A time scale under which a medium latte (40 s at scale 1) takes 200 ms.
pub const FAST: f64 = 0.005;

/// A new client (with its own connection) to the café at `addr`.
pub async fn connect(addr: SocketAddr) -> CafeClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the test café");
    CafeClient::new(channel)
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

/// The server's TLS from its flags, read as `grpc_serving::Application::build`
/// reads them (a test's servers are given their listener, so the scaffold
/// leaves that to the caller).
pub fn server_tls<E: grpc_serving::ServerEnv>(
    flags: &grpc_serving::ServerFlags<E>,
) -> Option<std::sync::Arc<grpc_serving::tls::ServerTls>> {
    let files = flags.tls_files()?;
    let tls = grpc_serving::tls::ServerTls::load(files).expect("the test's TLS files");
    Some(std::sync::Arc::new(tls))
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

/// Reads a buzzer stream to its end, returning every event.
pub async fn drain(mut stream: Streaming<OrderEvent>) -> Vec<OrderEvent> {
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.expect("the stream ends OK") {
        events.push(event);
    }
    events
}

/// The statuses a buzzer showed, with repeats (queue moves) folded.
pub fn statuses(events: &[OrderEvent]) -> Vec<OrderStatus> {
    let mut seen: Vec<OrderStatus> = events.iter().map(status_of).collect();
    seen.dedup();
    seen
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

/// Asserts that clap refuses each of `command_lines` for `C`: the
/// arguments after the binary's name, split at spaces (`--name=` gives an
/// empty value).
pub fn assert_refused<C: clap::Parser>(command_lines: &[&str]) {
    for args in command_lines {
        let name = C::command().get_name().to_owned();
        let line = std::iter::once(name.as_str()).chain(args.split_whitespace());
        assert!(C::try_parse_from(line).is_err(), "{args:?} was accepted");
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

/// The variables of this process's environment that would change what a
/// binary under test does (`CAFE_*`, `OTEL_*`, `RUST_LOG`, `DATABASE_URL`): a test that runs
/// the `cafe` binary removes them, so a developer's settings (a collector
/// endpoint, a default server) cannot leak into its output.
pub fn leaky_env() -> impl Iterator<Item = std::ffi::OsString> {
    std::env::vars_os().map(|(key, _)| key).filter(|key| {
        let name = key.to_string_lossy();
        name.starts_with("CAFE_")
            || name.starts_with("OTEL_")
            || name == "RUST_LOG"
            || name == "DATABASE_URL"
    })
}

/// Makes `dispatch` the default for this thread until the guard is
/// dropped, as `tracing::dispatcher::set_default` does: how a test gets a
/// telemetry stack of its own while others run beside it in the process.
///
/// It also keeps a second, inert dispatcher registered for the whole
/// process. With one dispatcher only, `tracing` decides whether a callsite
/// is enabled, the first time it is hit, by asking the default of the
/// thread that hits it; a thread with none (a barista's runtime) would turn
/// that callsite off for every thread, and a test running alone would lose
/// the spans it looks for. With two, `tracing` asks every dispatcher.
pub fn set_thread_default(dispatch: &tracing::Dispatch) -> tracing::dispatcher::DefaultGuard {
    static INERT: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    INERT.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::new()));
    tracing::dispatcher::set_default(dispatch)
}

/// Logs to the test output when `TEST_LOG` is set; silent otherwise.
pub fn init_test_log() {
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
