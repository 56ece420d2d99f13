//! The café server's configuration: command-line flags, each with an
//! environment variable of the same meaning (`--listen` or `CAFE_LISTEN`).
//!
//! Tests build a [`Config`] directly (`Config::default()` and struct update
//! syntax) instead of setting environment variables.

use std::{net::SocketAddr, time::Duration};

use cafe::{menu::TimeScale, telemetry::LogFormat};
use cafe_barista::brewing::BrewMode;
use clap::Parser;

/// `cafe-server`: a café that takes orders over gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "cafe-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on for gRPC.
    #[arg(long, env = "CAFE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// How many baristas brew at the same time.
    #[arg(long, env = "CAFE_BARISTAS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub baristas: u16,

    /// Multiplier on every brew time: 1 is real time, 0.05 makes a 40 s latte
    /// take 2 s.
    #[arg(long, env = "CAFE_TIME_SCALE", default_value = "1")]
    pub time_scale: TimeScale,

    /// How baristas wait while a drink brews: `async` awaits a timer;
    /// `blocking` sleeps the runtime's worker thread (the anti-pattern, to see
    /// the whole server stall).
    #[arg(long, env = "CAFE_BREW_MODE", value_enum, default_value_t = BrewMode::Async)]
    pub brew_mode: BrewMode,

    /// Worker threads of the async runtime [default: one per CPU core].
    #[arg(long, env = "CAFE_RUNTIME_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub runtime_workers: Option<u16>,

    /// Most orders that may wait in the queue; past it new orders get
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "CAFE_QUEUE_CAPACITY", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,

    /// On SIGINT or SIGTERM, how long brewing drinks may take to finish before
    /// the process exits anyway (e.g. 500ms, 10s).
    #[arg(long, env = "CAFE_SHUTDOWN_GRACE", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// How log lines are written to stderr (filter them with RUST_LOG).
    #[arg(long, env = "CAFE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
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
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            baristas: 2,
            time_scale: TimeScale::REAL,
            brew_mode: BrewMode::Async,
            runtime_workers: None,
            queue_capacity: 1000,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_flags_defaults() {
        // Every flag is given its documented default. (clap reads the
        // environment too: a developer with a collector running may well
        // have OTEL_EXPORTER_OTLP_ENDPOINT set, so that one is allowed for.)
        let parsed = Config::try_parse_from(["cafe-server"]).unwrap();
        let default = Config {
            otlp_endpoint: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok(),
            ..Config::default()
        };
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            ["cafe-server", "--baristas", "0"],
            ["cafe-server", "--time-scale", "0"],
            ["cafe-server", "--brew-mode", "sometimes"],
            ["cafe-server", "--shutdown-grace", "soon"],
        ] {
            assert!(
                Config::try_parse_from(args).is_err(),
                "{args:?} was accepted"
            );
        }
    }
}
