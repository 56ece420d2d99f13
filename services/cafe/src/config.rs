//! The café server's configuration: command-line flags, each with an
//! environment variable of the same meaning (`--listen` or `CAFE_LISTEN`).
//!
//! Tests build a [`Config`] directly (`Config::default()` and struct update
//! syntax) instead of setting environment variables.

use std::{net::SocketAddr, time::Duration};

use cafe_core::brewing::BrewMode;
use cafe_core::{menu::TimeScale, telemetry::LogFormat};
use clap::Parser;

use crate::remote::BaristaEndpoint;

/// The most `--baristas` a café may have. A barista waiting for an order is
/// a parked task of about 1 KiB (100,000 of them: 100 MB resident, measured)
/// and an order wakes only one of them, so the limit is not about speed:
/// it turns a typo (a few zeros too many) into an error rather than tens
/// of gigabytes of tasks.
pub const MAX_BARISTAS: i64 = 1_000_000;

/// `cafe-server`: a café that takes orders over gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "cafe-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on for gRPC.
    #[arg(long, env = "CAFE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// How many drinks are brewed at the same time. With the embedded
    /// baristas (no --barista-endpoint) that is how many baristas the café
    /// has; with remote baristas it is how many orders the café has in
    /// flight at once, spread over the replicas (give it at least the total
    /// of their --baristas, or some stand idle). Each is a parked task of
    /// about 1 KiB, not a thread: up to 1,000,000.
    #[arg(long, env = "CAFE_BARISTAS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=MAX_BARISTAS))]
    pub baristas: u32,

    /// Multiplier on every brew time: 1 is real time, 0.05 makes a 40 s latte
    /// take 2 s. Remote baristas brew at their own --time-scale; the café's
    /// is then only what GetMenu reports, so give them the same.
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
    /// A remote barista backend (`cafe-barista`) to brew on, e.g.
    /// http://127.0.0.1:50061 or barista:50061. Repeat it, or give a DNS name
    /// with several addresses (`docker compose --scale barista=3`): brews are
    /// balanced over every address. The environment variable takes a
    /// comma-separated list [default: none, the café's own embedded
    /// baristas brew].
    #[arg(
        long = "barista-endpoint",
        env = "CAFE_BARISTA_ENDPOINTS",
        value_delimiter = ','
    )]
    pub barista_endpoints: Vec<BaristaEndpoint>,

    /// How often the barista endpoints' DNS names are resolved again, so
    /// scaled-up replicas are used and gone ones dropped.
    #[arg(long, env = "CAFE_BARISTA_RESOLVE_INTERVAL", default_value = "5s",
          value_parser = humantime::parse_duration)]
    pub barista_resolve_interval: Duration,

    /// With remote baristas: how long orders wait for some barista to be
    /// reachable before they fail with UNAVAILABLE. While none is, new orders
    /// are refused at once and the café's health is NOT_SERVING.
    #[arg(long, env = "CAFE_BARISTA_WAIT", default_value = "5s",
          value_parser = humantime::parse_duration)]
    pub barista_wait: Duration,
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
            barista_endpoints: Vec::new(),
            barista_resolve_interval: Duration::from_secs(5),
            barista_wait: Duration::from_secs(5),
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
    fn barista_endpoints_repeat() {
        let config = Config::try_parse_from([
            "cafe-server",
            "--barista-endpoint",
            "http://127.0.0.1:50061",
            "--barista-endpoint",
            "barista:50062",
        ])
        .unwrap();
        let endpoints: Vec<String> = config
            .barista_endpoints
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(endpoints, ["127.0.0.1:50061", "barista:50062"]);
    }

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
    fn a_hundred_thousand_baristas_are_fine() {
        let config = Config::try_parse_from(["cafe-server", "--baristas", "100000"]).unwrap();
        assert_eq!(config.baristas, 100_000);
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            ["cafe-server", "--baristas", "0"],
            ["cafe-server", "--baristas", "1000001"],
            ["cafe-server", "--time-scale", "0"],
            ["cafe-server", "--brew-mode", "sometimes"],
            ["cafe-server", "--shutdown-grace", "soon"],
            ["cafe-server", "--barista-endpoint", "http://no-port"],
        ] {
            assert!(
                Config::try_parse_from(args).is_err(),
                "{args:?} was accepted"
            );
        }
    }
}
