//! tokio-console for the `cafe` process (the `console` cargo feature).
//!
//! tokio-console shows a runtime's tasks live: each one, whether it is
//! running or parked at an `.await`, how often it was polled and for how
//! long. Here that is every task of the process: the customers on the CLI's
//! runtime and, under `cafe demo`, each demo café's on its own. How to
//! build and run it: `docs/lesson.md`, "The event loop, visible".
//!
//! tokio describes its tasks and resources as tracing spans, only with the
//! `tokio_unstable` cfg, and the console reads them from the process's
//! subscriber. So in a console build the console's layer *is* the
//! subscriber, with warnings (or `RUST_LOG`) on stderr beside it, in place
//! of [`grpc_telemetry`]: its traces are not exported. (One subscriber
//! for the whole process, not one per thread: tokio's resources, a channel
//! made on one thread and used on another, must report to the same one.)
//!
//! The console's gRPC server listens on 127.0.0.1:6669 (`TOKIO_CONSOLE_BIND`
//! changes it) and speaks through our one tonic.

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

#[cfg(not(tokio_unstable))]
compile_error!(
    "the `console` feature needs tokio's task instrumentation: build with RUSTFLAGS=\"--cfg tokio_unstable\""
);

/// Installs the console's layer and stderr logs as the process's subscriber,
/// and starts the console's server on a thread of its own.
pub fn init() {
    let console = console_subscriber::ConsoleLayer::builder()
        .with_default_env()
        .spawn();
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    tracing_subscriber::registry()
        .with(console)
        .with(logs)
        .init();
}
