//! Logging for every binary of the café, set up in one place.
//!
//! Each binary calls [`init`] once, first thing, and keeps the returned
//! [`Telemetry`] guard alive until it exits. Log lines go to stderr (stdout
//! belongs to the CLI's output), filtered by `RUST_LOG` (default `info`),
//! coloured only on a terminal and when `NO_COLOR` is not set.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one coloured line per event.
    #[default]
    Text,
    /// For machines: one JSON object per event.
    Json,
}

/// What [`init`] needs to know.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The service's name in logs, e.g. `cafe`.
    pub service_name: &'static str,
    /// How to write log lines.
    pub log_format: LogFormat,
    /// The filter used when `RUST_LOG` is not set, e.g. `info`.
    pub default_filter: &'static str,
}

/// Keeps telemetry running; dropping it flushes what is buffered.
#[derive(Debug)]
#[must_use = "telemetry stops when the guard is dropped"]
pub struct Telemetry {
    _private: (),
}

/// Installs the global subscriber. Call once per process.
pub fn init(config: &TelemetryConfig) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config.default_filter));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests that start several services in one process) keeps
    // the first subscriber; that is not an error worth stopping for.
    let _ = result;
    tracing::debug!(service = config.service_name, "telemetry started");
    Telemetry { _private: () }
}
