//! The flags every server has, defined once: `--listen`,
//! `--runtime-workers`, `--shutdown-grace`, `--log-format`,
//! `--otlp-endpoint` and `--metrics-listen`, the limits that keep one
//! client from starving the others (the `--max-*`, `--*-timeout` and
//! `--keepalive-*` flags), TLS, and the runtime that `--runtime-workers`
//! sizes. What a server does with its time (the café's `--time-scale`, say)
//! is its own flag, in its own `Config`.
//!
//! Each server puts [`ServerFlags`] in its own clap `Config` with
//! `#[command(flatten)]`. The same flag must still read a different
//! environment variable in each server (`CAFE_LISTEN` for the café,
//! `BARISTA_LISTEN` for the barista backend), and clap's derive has no
//! prefix for a flattened struct. So [`ServerFlags`] is generic over a
//! marker type that says which server it belongs to ([`ServerEnv`]): its
//! prefix, its default address, and its own words for `--shutdown-grace`.
//! Every field names its variable as `env = E::env_name("LISTEN")`, so the
//! names are still in plain sight here, one per flag, and the prefix is
//! written once per server (clap's `string` feature builds them at run
//! time). Each server's flags, defaults and variables are listed in its
//! doc, generated from these definitions (`docs/cafe-server.md`,
//! `docs/baristas.md`).
//!
//! A test builds a value directly (`ServerFlags { listen, ..Default::default() }`)
//! instead of setting variables. [`ServerFlags::default`], like each
//! server's `Config::default()`, is [`defaults`]: what clap makes of no
//! arguments and no environment, so it cannot drift from `--help`.

use std::{fmt::Debug, marker::PhantomData, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Command, FromArgMatches};

use super::{tls::TlsFiles, transport::Limits};
use grpc_telemetry::LogFormat;

/// Which server a [`ServerFlags`] belongs to: how its variables are named,
/// where it listens by default, and its words for the flags whose help is
/// its own. Implemented by a marker type in each server's `config.rs`.
pub trait ServerEnv: Debug + Clone + Send + Sync + 'static {
    /// Start of every variable name: `CAFE` gives `CAFE_LISTEN`.
    const PREFIX: &'static str;
    /// Default of `--listen`, e.g. `127.0.0.1:50051`.
    const LISTEN: &'static str;
    /// Help of `--shutdown-grace` (what it waits for in this server).
    const SHUTDOWN_GRACE_HELP: &'static str;

    /// The variable of flag `name`: `env_name("LISTEN")` is `CAFE_LISTEN`.
    fn env_name(name: &str) -> String {
        format!("{}_{name}", Self::PREFIX)
    }
}

/// The flags every server has; `E` says which server (see the module docs).
#[derive(Debug, Clone, Args)]
pub struct ServerFlags<E: ServerEnv> {
    /// Address to listen on for gRPC.
    #[arg(long, env = E::env_name("LISTEN"), default_value = E::LISTEN)]
    pub listen: SocketAddr,

    /// Worker threads of the async runtime [default: one per CPU core].
    #[arg(long, env = E::env_name("RUNTIME_WORKERS"),
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub runtime_workers: Option<u16>,

    /// On SIGINT or SIGTERM, how long closing may take before the process
    /// exits anyway (help: [`ServerEnv::SHUTDOWN_GRACE_HELP`]).
    #[arg(long, env = E::env_name("SHUTDOWN_GRACE"), default_value = "10s",
          value_parser = humantime::parse_duration, help = E::SHUTDOWN_GRACE_HELP)]
    pub shutdown_grace: Duration,

    /// How log lines are written to stderr (filter them with RUST_LOG).
    #[arg(long, env = E::env_name("LOG_FORMAT"), value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Send traces over OTLP/gRPC to this collector, e.g.
    /// http://localhost:4317 (Jaeger or an OpenTelemetry Collector)
    /// [default: none, traces are not exported].
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Serve metrics for Prometheus over HTTP at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9051 (see docs/metrics.md) [default: none, no metrics
    /// endpoint].
    #[arg(long, env = E::env_name("METRICS_LISTEN"))]
    pub metrics_listen: Option<SocketAddr>,

    // Limits: what one client (or many) can make the server hold. Each
    // protects everyone else; `serving::transport` enforces them.
    /// Most client connections open at once; one more is closed as soon as
    /// it is accepted. Each is a file descriptor: keep it under the
    /// process's open-file limit (`ulimit -n`).
    #[arg(long, env = E::env_name("MAX_CONNECTIONS"), default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How long a new connection may take to send the HTTP/2 preface
    /// before it is closed: sockets that never speak HTTP/2 do not hold a
    /// connection slot for long.
    #[arg(long, env = E::env_name("HANDSHAKE_TIMEOUT"), default_value = "10s",
          value_parser = positive_duration)]
    pub handshake_timeout: Duration,

    /// How long a connection may stay open with no call on it before the
    /// server closes it (with GOAWAY, so a client reconnects cleanly).
    #[arg(long, env = E::env_name("IDLE_TIMEOUT"), default_value = "5m",
          value_parser = positive_duration)]
    pub idle_timeout: Duration,

    /// Most calls open at once on one connection
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`); past it a client's calls wait
    /// for a free stream.
    #[arg(long, env = E::env_name("MAX_STREAMS_PER_CONNECTION"), default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,

    /// How long a connection may stay silent before the server pings it
    /// (HTTP/2 keepalive), to find clients that vanished without closing.
    #[arg(long, env = E::env_name("KEEPALIVE_INTERVAL"), default_value = "60s",
          value_parser = positive_duration)]
    pub keepalive_interval: Duration,

    /// How long a keepalive ping may go unanswered before the connection
    /// is closed and its calls end.
    #[arg(long, env = E::env_name("KEEPALIVE_TIMEOUT"), default_value = "20s",
          value_parser = positive_duration)]
    pub keepalive_timeout: Duration,

    /// Largest request message accepted, in bytes; a larger one gets
    /// OUT_OF_RANGE (tonic's code for it). Every request is under 1 KiB.
    #[arg(long, env = E::env_name("MAX_MESSAGE_SIZE"), default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_message_size: u32,

    // TLS (`serving::tls`): both files, or neither.
    /// Serve gRPC over TLS with this certificate chain (PEM, leaf first);
    /// needs --tls-key. Reloaded with the key on SIGHUP, without dropping
    /// connections. The metrics endpoint stays plain HTTP [default: none,
    /// plaintext].
    #[arg(long, env = E::env_name("TLS_CERT"), requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
    /// [default: none].
    #[arg(long, env = E::env_name("TLS_KEY"), requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: refuse any client without a certificate signed by one of
    /// these CAs (PEM); needs --tls-cert [default: none, no client
    /// certificate asked].
    #[arg(long, env = E::env_name("TLS_CLIENT_CA"), requires = "tls_cert", value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,

    /// Which server these flags are for: a type only, it holds nothing.
    #[arg(skip)]
    pub env: PhantomData<E>,
}

/// A duration flag that must be more than zero (`0s` would close
/// everything at once).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than 0, e.g. 10s".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

impl<E: ServerEnv> Default for ServerFlags<E> {
    /// The flags' defaults (see [`defaults`]).
    fn default() -> Self {
        defaults()
    }
}

/// The defaults of the flags `A`: what clap makes of no arguments and no
/// environment variables. Each server's `Config::default()` (and
/// [`ServerFlags::default`]) is this, so a configuration built in a test or
/// the CLI's `demo` cannot drift from the defaults `--help` documents, and
/// it is the same on every machine: a developer with
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set gets what CI gets.
pub fn defaults<A: Args + FromArgMatches>() -> A {
    let command =
        A::augment_args(Command::new("defaults")).mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("no flag is required");
    A::from_arg_matches(&matches).expect("every default is a valid value")
}

impl<E: ServerEnv> ServerFlags<E> {
    /// The tokio runtime the server runs on, with `--runtime-workers`
    /// threads if given.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = self.runtime_workers {
            builder.worker_threads(usize::from(workers));
        }
        builder.enable_all().build()
    }

    /// The TLS files, if the server serves TLS (clap makes sure that
    /// `--tls-cert` and `--tls-key` come together).
    pub fn tls_files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The limits the transport enforces, from these flags.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            max_streams_per_connection: self.max_streams_per_connection,
            keepalive_interval: self.keepalive_interval,
            keepalive_timeout: self.keepalive_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Clone)]
    enum TestEnv {}

    impl ServerEnv for TestEnv {
        const PREFIX: &'static str = "TEST";
        const LISTEN: &'static str = "127.0.0.1:50099";
        const SHUTDOWN_GRACE_HELP: &'static str = "grace help";
    }

    #[derive(Debug, Parser)]
    struct TestConfig {
        #[command(flatten)]
        server: ServerFlags<TestEnv>,
        /// A flag read from a variable every test process has.
        #[arg(long, env = "PATH")]
        path: Option<String>,
    }

    #[test]
    fn each_flag_reads_the_servers_variable() {
        let command = TestConfig::command();
        let env_of = |id: &str| {
            let arg = command.get_arguments().find(|arg| arg.get_id() == id);
            let env = arg.unwrap_or_else(|| panic!("no flag {id}")).get_env();
            env.map(|name| name.to_string_lossy().into_owned())
        };
        for (id, env) in [
            ("listen", "TEST_LISTEN"),
            ("runtime_workers", "TEST_RUNTIME_WORKERS"),
            ("shutdown_grace", "TEST_SHUTDOWN_GRACE"),
            ("log_format", "TEST_LOG_FORMAT"),
            ("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
            ("metrics_listen", "TEST_METRICS_LISTEN"),
            ("max_connections", "TEST_MAX_CONNECTIONS"),
            ("handshake_timeout", "TEST_HANDSHAKE_TIMEOUT"),
            ("idle_timeout", "TEST_IDLE_TIMEOUT"),
            (
                "max_streams_per_connection",
                "TEST_MAX_STREAMS_PER_CONNECTION",
            ),
            ("keepalive_interval", "TEST_KEEPALIVE_INTERVAL"),
            ("keepalive_timeout", "TEST_KEEPALIVE_TIMEOUT"),
            ("max_message_size", "TEST_MAX_MESSAGE_SIZE"),
            ("tls_cert", "TEST_TLS_CERT"),
            ("tls_key", "TEST_TLS_KEY"),
            ("tls_client_ca", "TEST_TLS_CLIENT_CA"),
        ] {
            assert_eq!(env_of(id).as_deref(), Some(env), "--{id}");
        }
    }

    #[test]
    fn the_servers_words_are_the_help() {
        let command = TestConfig::command();
        let help_of = |id: &str| {
            let arg = command.get_arguments().find(|arg| arg.get_id() == id);
            arg.and_then(|arg| arg.get_help()).map(ToString::to_string)
        };
        assert_eq!(help_of("shutdown_grace").as_deref(), Some("grace help"));
    }

    #[test]
    fn default_is_the_documented_defaults() {
        // As documented in each server's generated flag reference.
        let default = ServerFlags::<TestEnv>::default();
        assert_eq!(default.listen, SocketAddr::from(([127, 0, 0, 1], 50099)));
        assert_eq!(default.runtime_workers, None);
        assert_eq!(default.shutdown_grace, Duration::from_secs(10));
        assert_eq!(default.log_format, LogFormat::Text);
        assert_eq!(default.otlp_endpoint, None);
        assert_eq!(default.metrics_listen, None);
        assert_eq!(default.max_connections, 10_000);
        assert_eq!(default.handshake_timeout, Duration::from_secs(10));
        assert_eq!(default.idle_timeout, Duration::from_secs(300));
        assert_eq!(default.max_streams_per_connection, 16_384);
        assert_eq!(default.keepalive_interval, Duration::from_secs(60));
        assert_eq!(default.keepalive_timeout, Duration::from_secs(20));
        assert_eq!(default.max_message_size, 64 * 1024);
        assert_eq!(default.tls_files(), None);
        assert_eq!(default.tls_client_ca, None);
    }

    #[test]
    fn defaults_ignore_the_environment() {
        // clap would read PATH into `--path`; the defaults do not.
        assert!(TestConfig::try_parse_from(["test"]).unwrap().path.is_some());
        assert_eq!(defaults::<TestConfig>().path, None);
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            ["test", "--shutdown-grace", "soon"],
            ["test", "--runtime-workers", "0"],
            ["test", "--listen", "nowhere"],
            ["test", "--metrics-listen", "9051"],
            ["test", "--max-connections", "0"],
            ["test", "--handshake-timeout", "0s"],
            ["test", "--idle-timeout", "0s"],
            ["test", "--max-streams-per-connection", "0"],
            ["test", "--max-message-size", "10"],
            // TLS needs both files; mutual TLS needs TLS.
            ["test", "--tls-cert", "cert.pem"],
            ["test", "--tls-key", "key.pem"],
            ["test", "--tls-client-ca", "ca.pem"],
        ] {
            assert!(
                TestConfig::try_parse_from(args).is_err(),
                "{args:?} was accepted"
            );
        }
    }
}
