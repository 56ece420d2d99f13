//! The barista backend's configuration: the café's flags where they mean
//! the same, each with an environment variable (`--listen` or
//! `BARISTA_LISTEN`), plus `--name` for telling replicas apart.
//!
//! Tests build a [`Config`] directly (`Config::default()` and struct update
//! syntax) instead of setting environment variables.

use std::{net::SocketAddr, time::Duration};

use cafe_core::{menu::TimeScale, telemetry::LogFormat};
use clap::Parser;

use cafe_core::brewing::BrewMode;

/// `cafe-barista`: a station of baristas that brews drinks for the café.
#[derive(Debug, Clone, Parser)]
#[command(name = "cafe-barista", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on for gRPC.
    #[arg(long, env = "BARISTA_LISTEN", default_value = "127.0.0.1:50061")]
    pub listen: SocketAddr,

    /// This replica's name, put before each barista's own name on the board
    /// (`<name>/Ana`) [default: the host name, so compose replicas differ].
    #[arg(long, env = "BARISTA_NAME", default_value_t = default_name(),
          hide_default_value = true, value_parser = parse_name)]
    pub name: String,

    /// How many baristas brew at the same time; more drinks wait their turn.
    #[arg(long, env = "BARISTA_BARISTAS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub baristas: u16,

    /// Multiplier on every brew time: 1 is real time, 0.05 makes a 40 s latte
    /// take 2 s.
    #[arg(long, env = "BARISTA_TIME_SCALE", default_value = "1")]
    pub time_scale: TimeScale,

    /// How baristas wait while a drink brews: `async` awaits a timer;
    /// `blocking` sleeps the runtime's worker thread (the anti-pattern).
    #[arg(long, env = "BARISTA_BREW_MODE", value_enum, default_value_t = BrewMode::Async)]
    pub brew_mode: BrewMode,

    /// Worker threads of the async runtime [default: one per CPU core].
    #[arg(long, env = "BARISTA_RUNTIME_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub runtime_workers: Option<u16>,

    /// On SIGINT or SIGTERM, how long the drinks in hand may take to finish
    /// before the process exits anyway (e.g. 500ms, 10s).
    #[arg(long, env = "BARISTA_SHUTDOWN_GRACE", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// How log lines are written to stderr (filter them with RUST_LOG).
    #[arg(long, env = "BARISTA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Send traces over OTLP/gRPC to this collector, e.g.
    /// http://localhost:4317 (Jaeger or an OpenTelemetry Collector)
    /// [default: none, traces are not exported].
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl Default for Config {
    /// The same values as the flags' defaults.
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50061)),
            name: default_name(),
            baristas: 2,
            time_scale: TimeScale::REAL,
            brew_mode: BrewMode::Async,
            runtime_workers: None,
            shutdown_grace: Duration::from_secs(10),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
        }
    }
}

impl Config {
    /// The tokio runtime the server runs on, with `--runtime-workers`
    /// threads if given.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = self.runtime_workers {
            builder.worker_threads(usize::from(workers));
        }
        builder.enable_all().build()
    }
}

/// The host name (a container's name under Docker or Kubernetes), or
/// `barista` if it cannot be read.
pub fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .and_then(|name| parse_name(&name).ok())
        .unwrap_or_else(|| "barista".to_owned())
}

/// A replica name is shown on the board: 1 to 64 characters, no `/` (it
/// separates the replica from the barista) and no control characters.
fn parse_name(name: &str) -> Result<String, String> {
    let chars = name.chars().count();
    if chars == 0 || chars > 64 || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "{name:?} is not a replica name: use 1 to 64 characters without '/', e.g. barista-1"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_flags_defaults() {
        let parsed = Config::try_parse_from(["cafe-barista"]).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            ["cafe-barista", "--baristas", "0"],
            ["cafe-barista", "--time-scale", "-1"],
            ["cafe-barista", "--name", "a/b"],
            ["cafe-barista", "--name", ""],
            ["cafe-barista", "--shutdown-grace", "soon"],
        ] {
            assert!(
                Config::try_parse_from(args).is_err(),
                "{args:?} was accepted"
            );
        }
    }
}
