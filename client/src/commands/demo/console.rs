//! tokio-console for the demo's cafés (the `console` cargo feature).
//!
//! tokio-console shows a runtime's tasks live: each one, whether it is
//! running or parked at an `.await`, how often it was polled and for how
//! long. Build and run with
//!
//! ```sh no-run
//! RUSTFLAGS="--cfg tokio_unstable" cargo run --release --features console --bin cafe -- demo --part barista
//! tokio-console    # in another terminal (cargo install tokio-console)
//! ```
//!
//! tokio describes its tasks as tracing spans (only with the
//! `tokio_unstable` cfg), and a span goes to the subscriber that is the
//! default on the thread that spawns the task. So the console's subscriber
//! is made the thread default of every demo café thread (the one that runs
//! `block_on` and each runtime worker), and only those: the CLI's own
//! runtime, and its traces and logs, stay as they are. The cafés' own spans
//! then go to the console only, so with this feature their logs and OTLP
//! spans are not recorded.
//!
//! The console's gRPC server listens on 127.0.0.1:6669
//! (`TOKIO_CONSOLE_BIND` changes it) and speaks through our one tonic.

use std::{cell::RefCell, sync::OnceLock};

use tracing::{Dispatch, dispatcher::DefaultGuard};
use tracing_subscriber::layer::SubscriberExt;

#[cfg(not(tokio_unstable))]
compile_error!(
    "the `console` feature needs tokio's task instrumentation: build with RUSTFLAGS=\"--cfg tokio_unstable\""
);

/// The console's subscriber, made once per process: its server binds one
/// port, and every demo café reports to it.
fn dispatch() -> &'static Dispatch {
    static CONSOLE: OnceLock<Dispatch> = OnceLock::new();
    CONSOLE.get_or_init(|| {
        let layer = console_subscriber::ConsoleLayer::builder()
            .with_default_env()
            .spawn();
        Dispatch::new(tracing_subscriber::registry().with(layer))
    })
}

thread_local! {
    /// The guard that keeps the console's subscriber this thread's default;
    /// dropped (and the default restored) when the thread stops.
    static DEFAULT: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// Makes the console's subscriber this thread's default (a runtime
/// worker's `on_thread_start`).
pub(super) fn enter() {
    let guard = tracing::dispatcher::set_default(dispatch());
    DEFAULT.with(|default| *default.borrow_mut() = Some(guard));
}

/// Undoes [`enter`] (a runtime worker's `on_thread_stop`).
pub(super) fn leave() {
    DEFAULT.with(|default| default.borrow_mut().take());
}

/// Runs `f` with the console's subscriber as this thread's default.
pub(super) fn with<T>(f: impl FnOnce() -> T) -> T {
    tracing::dispatcher::with_default(dispatch(), f)
}
