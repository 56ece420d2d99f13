//! The café server's configuration: command-line flags, each with an
//! environment variable of the same meaning (`--listen` or `CAFE_LISTEN`).
//!
//! The flags every server has (`--listen`, `--time-scale`, `--brew-mode`,
//! `--runtime-workers`, `--shutdown-grace`, `--log-format`,
//! `--otlp-endpoint`) are [`grpc_serving::ServerFlags`], flattened in
//! with the `CAFE_` prefix ([`CafeEnv`]); the rest are the café's own.
//!
//! Tests build a [`Config`] directly (`Config::default()` and struct update
//! syntax) instead of setting environment variables.

use std::{path::PathBuf, time::Duration};

use cafe_domain::{
    brewing::BrewMode,
    faults::{self, FaultSpec},
    menu::TimeScale,
};
use clap::Parser;
use grpc_serving::{self as serving, ServerEnv, ServerFlags, StartupError, tls};
use tonic::transport::ClientTlsConfig;

use crate::{book::FINISHED_ORDERS_KEPT, remote::BaristaEndpoint};

/// The most `--baristas` a café may have. A barista waiting for an order is
/// a small parked task (docs/performance.md measures it) and an order
/// wakes only one of them, so the limit is not about speed:
/// it turns a typo (a few zeros too many) into an error rather than tens
/// of gigabytes of tasks.
pub const MAX_BARISTAS: i64 = 1_000_000;

/// `cafe-server`: a café that takes orders over gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "cafe-server", version, about, long_about = None)]
pub struct Config {
    /// The flags every server has.
    #[command(flatten)]
    pub server: ServerFlags<CafeEnv>,

    /// Multiplier on every brew time: 1 is real time, 0.05 makes a 40 s
    /// latte take 2 s. Remote baristas brew at their own --time-scale; the
    /// café's is then only what GetMenu reports, so give them the same.
    #[arg(long, env = "CAFE_TIME_SCALE", default_value = "1")]
    pub time_scale: TimeScale,

    /// How baristas wait while a drink brews: `async` awaits a timer;
    /// `blocking` sleeps the runtime's worker thread (the anti-pattern, to
    /// see the whole server stall).
    #[arg(long, env = "CAFE_BREW_MODE", value_enum, default_value_t = BrewMode::Async)]
    pub brew_mode: BrewMode,

    /// How many baristas the café has: how many drinks it brews at the same
    /// time. Each is a small parked task, not a thread: up to 1,000,000.
    /// Embedded baristas only: with --barista-endpoint the
    /// replicas' own --baristas set how many drinks are in flight (the café
    /// reads them), and this flag is not used.
    #[arg(long, env = "CAFE_BARISTAS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=MAX_BARISTAS))]
    pub baristas: u32,

    /// Most orders that may wait in the queue; past it new orders get
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "CAFE_QUEUE_CAPACITY", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,

    /// Longest a customer may wait at the counter (OrderCoffee); past it
    /// the call ends DEADLINE_EXCEEDED and the order is cancelled, so no
    /// call holds the café for ever. A buzzer (OrderWithBuzzer) can wait
    /// longer: its order goes on without a caller.
    #[arg(long, env = "CAFE_MAX_COUNTER_WAIT", default_value = "10m",
          value_parser = humantime::parse_duration)]
    pub max_counter_wait: Duration,

    /// With a PostgreSQL --database-url (a line shared by several cafés):
    /// how long a café may go without a heartbeat (it writes one every
    /// second) before the other cafés take the drinks it was brewing back to
    /// the line and brew them themselves.
    #[arg(long, env = "CAFE_LEASE", default_value = "5s",
          value_parser = humantime::parse_duration)]
    pub lease: Duration,

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

    /// Talk TLS to the barista backends, trusting the certificates this CA
    /// (PEM) signed; each must be for the host name in --barista-endpoint
    /// [default: none, plaintext].
    #[arg(long, env = "CAFE_BARISTA_CA", value_name = "PEM")]
    pub barista_ca: Option<PathBuf>,

    /// Mutual TLS: the client certificate (PEM) the café presents to the
    /// baristas, for those started with --tls-client-ca; needs --barista-ca
    /// and --barista-tls-key [default: none].
    #[arg(long, env = "CAFE_BARISTA_TLS_CERT", value_name = "PEM",
          requires_all = ["barista_tls_key", "barista_ca"])]
    pub barista_tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --barista-tls-cert [default: none].
    #[arg(
        long,
        env = "CAFE_BARISTA_TLS_KEY",
        value_name = "PEM",
        requires = "barista_tls_cert"
    )]
    pub barista_tls_key: Option<PathBuf>,

    /// Where the café keeps its orders, so that they survive a restart:
    /// `sqlite://FILE` (created on first start, WAL mode), or
    /// `postgres://USER:PASSWORD@HOST/DATABASE` (no TLS: reach it over
    /// loopback or a private network), or `memory` (orders are lost when the
    /// café stops) [default: sqlite://<--data-dir>/cafe.db]
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// The directory of the café's own files: its SQLite database when no
    /// --database-url is given, and beside it the lock that keeps a second
    /// café off it. Created on first start.
    #[arg(long, env = "CAFE_DATA_DIR", default_value = "cafe-data")]
    pub data_dir: PathBuf,

    /// How many finished orders the café remembers (and keeps in its
    /// store) for GetOrder and WatchOrder; older ones are forgotten, oldest
    /// first.
    #[arg(long, env = "CAFE_FINISHED_ORDERS_KEPT", default_value_t = FINISHED_ORDERS_KEPT as u32)]
    pub finished_orders_kept: u32,

    /// Faults to switch on, to find again (docs/debugging.md), e.g.
    /// `slow-barista=0.2x10,flaky-barista=0.1,blocking-barista,slow-store=20ms,leak=4KiB`:
    /// a fraction of brews FACTOR times slower, a fraction failing half-way,
    /// brews blocking their thread, each change the order store takes
    /// delayed, each order keeping memory never freed. `@NAME` after a
    /// barista's fault limits it to one barista (`slow-barista=0.5x4@Ana`).
    #[arg(long, env = "CAFE_FAULTS", default_value = "none", value_name = "SPEC")]
    pub faults: FaultSpec,

    /// A file holding the faults (as --faults; one per line or
    /// comma-separated), read at start and again on each SIGHUP: a running
    /// café is broken and mended without a restart [default: none].
    #[arg(long, env = "CAFE_FAULTS_FILE", value_name = "FILE",
          conflicts_with = "faults", value_parser = faults::parse_file)]
    pub faults_file: Option<PathBuf>,
}

impl Config {
    /// TLS to the baristas, from `--barista-ca` and the client certificate
    /// flags: `None` without `--barista-ca`. The files are read and
    /// checked now; an error names the file.
    pub fn barista_tls(&self) -> Result<Option<ClientTlsConfig>, StartupError> {
        let Some(ca) = &self.barista_ca else {
            return Ok(None);
        };
        let identity = self
            .barista_tls_cert
            .as_deref()
            .zip(self.barista_tls_key.as_deref());
        tls::client_tls(ca, identity).map(Some)
    }

    /// The order store's URL: `--database-url`, or the SQLite file in
    /// `--data-dir`.
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("cafe.db").display()),
        }
    }
}

/// The café's names and words for the flags every server has.
#[derive(Debug, Clone)]
pub enum CafeEnv {}

impl ServerEnv for CafeEnv {
    const SHUTDOWN_GRACE_HELP: &'static str = "On SIGINT or SIGTERM, how long brewing drinks \
        may take to finish before the process exits anyway (e.g. 500ms, 10s)";
    const PREFIX: &'static str = "CAFE";
    const LISTEN: &'static str = "127.0.0.1:50051";
}

impl Default for Config {
    /// The flags' defaults (see [`serving::flags::defaults`]), except the
    /// order store: `memory`, so that tests, `cafe demo` and other users of
    /// the library leave no files behind. The binary, given no
    /// `--database-url`, keeps its orders in `--data-dir`.
    fn default() -> Self {
        Config {
            database_url: Some("memory".into()),
            ..serving::flags::defaults()
        }
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
    fn a_hundred_thousand_baristas_are_fine() {
        let config = Config::try_parse_from(["cafe-server", "--baristas", "100000"]).unwrap();
        assert_eq!(config.baristas, 100_000);
    }

    #[test]
    fn the_binary_keeps_orders_in_its_data_dir_and_the_library_in_memory() {
        let binary =
            Config::try_parse_from(["cafe-server", "--data-dir", "/var/lib/cafe"]).unwrap();
        assert_eq!(binary.store_url(), "sqlite:///var/lib/cafe/cafe.db");
        assert_eq!(Config::default().store_url(), "memory");
    }

    #[test]
    fn bad_values_are_refused() {
        // The shared flags' bad values are refused in `grpc_serving::flags`.
        cafe_testkit::assert_refused::<Config>(&[
            "--baristas 0",
            "--baristas 1000001",
            "--queue-capacity 0",
            "--max-counter-wait soon",
            "--barista-endpoint http://no-port",
            // A client certificate needs its key and a CA to trust.
            "--barista-tls-cert c.pem --barista-ca ca.pem",
            "--barista-tls-cert c.pem --barista-tls-key k.pem",
            "--barista-tls-key k.pem",
        ]);
    }
}
