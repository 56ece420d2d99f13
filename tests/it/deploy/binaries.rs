//! Our three binaries as a deployment file sees them: the variables each
//! reads, a server's effective configuration from variables and arguments,
//! and the checks that hold however a server is run (compose or
//! Kubernetes): where it listens, and how long it may take to close.

use std::{collections::BTreeMap, ffi::OsString, net::SocketAddr, time::Duration};

use clap::{Arg, Command, CommandFactory, FromArgMatches};

/// Our three binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binary {
    Server,
    Barista,
    Cli,
}

impl Binary {
    pub(crate) fn from_name(name: &str) -> Option<Binary> {
        match name {
            "cafe-server" => Some(Binary::Server),
            "cafe-barista" => Some(Binary::Barista),
            "cafe" => Some(Binary::Cli),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Binary::Server => "cafe-server",
            Binary::Barista => "cafe-barista",
            Binary::Cli => "cafe",
        }
    }

    fn real_command(self) -> Command {
        match self {
            Binary::Server => cafe_server::Config::command(),
            Binary::Barista => cafe_barista::Config::command(),
            Binary::Cli => cafe_client::cli::Cli::command(),
        }
    }

    /// The real clap definition, with every `env` removed: the test's own
    /// environment must not fill in what a deployment file leaves out.
    pub(crate) fn command(self) -> Command {
        without_env(self.real_command())
    }

    /// Every variable the binary reads through a flag, with that flag.
    pub(crate) fn env_args(self) -> BTreeMap<String, Arg> {
        let mut vars = BTreeMap::new();
        collect_env_args(&self.real_command(), &mut vars);
        vars
    }

    /// The gRPC service a server serves, the name its readiness is
    /// reported under (`grpc.health.v1`).
    pub(crate) fn service_name(self) -> Option<&'static str> {
        match self {
            Binary::Server => Some(cafe_domain::proto::v1::cafe_server::SERVICE_NAME),
            Binary::Barista => Some(cafe_domain::proto::v1::barista_server::SERVICE_NAME),
            Binary::Cli => None,
        }
    }
}

fn without_env(command: Command) -> Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    let mut command = command.mut_args(|arg| arg.env(None::<&'static str>));
    for name in names {
        command = command.mut_subcommand(name, without_env);
    }
    command
}

fn collect_env_args(command: &Command, vars: &mut BTreeMap<String, Arg>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            vars.insert(env.to_string_lossy().into_owned(), arg.clone());
        }
    }
    for sub in command.get_subcommands() {
        collect_env_args(sub, vars);
    }
}

/// One variable as a deployment file sets it: a value, or a reference
/// (a Kubernetes Secret) whose value the file does not hold.
#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
}

/// Every variable is one the binary reads, with a value its flag accepts.
pub(crate) fn check_environment(
    who: &str,
    binary: Binary,
    environment: &[Var],
    problems: &mut Vec<String>,
) {
    let env_args = binary.env_args();
    for var in environment {
        if let Some(arg) = env_args.get(&var.name) {
            if let Some(value) = &var.value
                && let Err(error) = check_value(arg, value)
            {
                problems.push(format!("{who}: {}={value:?}: {error}", var.name));
            }
        } else if !grpc_telemetry::ENV_VARS.contains(&var.name.as_str()) {
            problems.push(format!(
                "{who}: sets {}, which {} does not read",
                var.name,
                binary.name()
            ));
        }
    }
}

/// Runs the flag's own value parser on `value`.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    // Alone in a command of its own: without its `requires` and
    // `conflicts_with` too (`--tls-cert` requires `--tls-key`), which name
    // flags this command does not have.
    let arg = arg
        .clone()
        .env(None::<&'static str>)
        .global(false)
        .required(false)
        .requires(clap::builder::Resettable::Reset)
        .conflicts_with(clap::builder::Resettable::Reset);
    let takes_value = arg.get_action().takes_values();
    let long = arg
        .get_long()
        .ok_or("a variable on a flag without a long name")?
        .to_owned();
    let command = Command::new("env-check").no_binary_name(true).arg(arg);
    if takes_value {
        command
            .try_get_matches_from([format!("--{long}={value}")])
            .map(drop)
            .map_err(first_line)
    } else if ["true", "false", "1", "0", "yes", "no", "on", "off"].contains(&value) {
        Ok(())
    } else {
        Err("not a boolean".into())
    }
}

pub(crate) fn first_line(error: clap::Error) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// A server's effective configuration: its variables as flags, then its
/// arguments, parsed by its real `Config`. A variable whose value the file
/// does not hold (a Secret) is left out.
pub(crate) fn parse_server<C: FromArgMatches>(
    who: &str,
    binary: Binary,
    environment: &[Var],
    arguments: &[String],
    problems: &mut Vec<String>,
) -> Option<C> {
    let env_args = binary.env_args();
    let mut args: Vec<OsString> = vec![binary.name().into()];
    for var in environment {
        if let (Some(long), Some(value)) =
            (env_args.get(&var.name).and_then(Arg::get_long), &var.value)
        {
            args.push(format!("--{long}={value}").into());
        }
    }
    args.extend(arguments.iter().map(OsString::from));
    let parsed = binary
        .command()
        .try_get_matches_from(&args)
        .and_then(|matches| C::from_arg_matches(&matches));
    match parsed {
        Ok(config) => Some(config),
        Err(error) => {
            problems.push(format!("{who}: {}: {}", binary.name(), first_line(error)));
            None
        }
    }
}

pub(crate) fn parse_cli(args: &[String]) -> Result<cafe_client::cli::Cli, String> {
    Binary::Cli
        .command()
        .try_get_matches_from(args)
        .and_then(|matches| cafe_client::cli::Cli::from_arg_matches(&matches))
        .map_err(first_line)
}

/// What a running server needs from the file that runs it, whichever
/// binary: its listen addresses and its closing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerSettings {
    pub(crate) binary: Binary,
    pub(crate) listen: SocketAddr,
    pub(crate) metrics: Option<SocketAddr>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) time_scale: cafe_domain::menu::TimeScale,
}

impl ServerSettings {
    fn of<E: grpc_serving::ServerEnv>(
        binary: Binary,
        server: &grpc_serving::ServerFlags<E>,
        time_scale: cafe_domain::menu::TimeScale,
    ) -> Self {
        ServerSettings {
            binary,
            listen: server.listen,
            metrics: server.metrics_listen,
            shutdown_grace: server.shutdown_grace,
            time_scale,
        }
    }
}

/// A parsed server: the café's own settings too, where it is the café.
pub(crate) enum Parsed {
    Cafe(Box<cafe_server::Config>),
    Barista(Box<cafe_barista::Config>),
}

impl Parsed {
    pub(crate) fn parse(
        who: &str,
        binary: Binary,
        environment: &[Var],
        arguments: &[String],
        problems: &mut Vec<String>,
    ) -> Option<Parsed> {
        match binary {
            Binary::Server => parse_server(who, binary, environment, arguments, problems)
                .map(|config| Parsed::Cafe(Box::new(config))),
            Binary::Barista => parse_server(who, binary, environment, arguments, problems)
                .map(|config| Parsed::Barista(Box::new(config))),
            Binary::Cli => None,
        }
    }

    pub(crate) fn settings(&self) -> ServerSettings {
        match self {
            Parsed::Cafe(config) => {
                ServerSettings::of(Binary::Server, &config.server, config.time_scale)
            }
            Parsed::Barista(config) => {
                ServerSettings::of(Binary::Barista, &config.server, config.time_scale)
            }
        }
    }

    pub(crate) fn otlp_endpoint(&self) -> Option<&str> {
        match self {
            Parsed::Cafe(config) => config.server.otlp_endpoint.as_deref(),
            Parsed::Barista(config) => config.server.otlp_endpoint.as_deref(),
        }
    }
}

/// A server in a container listens on every interface, gRPC and metrics
/// alike, on exactly the ports the file declares for it, and serves
/// metrics: these files are what an operator runs.
pub(crate) fn check_listen(
    who: &str,
    settings: &ServerSettings,
    declared_ports: &[u16],
    problems: &mut Vec<String>,
) {
    let mut listening = vec![settings.listen];
    match settings.metrics {
        Some(metrics) => listening.push(metrics),
        None => problems.push(format!(
            "{who}: serves no metrics; set its METRICS_LISTEN variable (e.g. 0.0.0.0:9051)"
        )),
    }
    for address in &listening {
        if !address.ip().is_unspecified() {
            problems.push(format!("{who}: listens on {address}, which nothing outside its container can reach; use 0.0.0.0"));
        }
        if !declared_ports.contains(&address.port()) {
            problems.push(format!(
                "{who}: declares no port {} (it listens on {address})",
                address.port()
            ));
        }
    }
    for port in declared_ports {
        if !listening.iter().any(|address| address.port() == *port) {
            problems.push(format!(
                "{who}: declares port {port}, but it listens on {}",
                listening
                    .iter()
                    .map(|address| address.port().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
    }
}

/// The shutdown grace lets the longest drink at the server's time scale
/// finish, and whoever stops the container (Docker's stop grace period,
/// Kubernetes' termination grace) waits for the grace plus the last span
/// flush before it kills.
pub(crate) fn check_grace(
    who: &str,
    settings: &ServerSettings,
    kill_after: Option<Duration>,
    what_kills: &str,
    problems: &mut Vec<String>,
) {
    let longest = cafe_domain::menu::MENU
        .iter()
        .flat_map(|drink| {
            drink
                .sizes
                .iter()
                .map(move |size| drink.brew_time_for(*size, settings.time_scale))
        })
        .max()
        .unwrap_or_default();
    let grace = settings.shutdown_grace;
    if grace < longest {
        problems.push(format!(
            "{who}: shutdown grace {grace:?} is shorter than the longest brew at this time scale ({longest:?})"
        ));
    }
    match kill_after {
        None => problems.push(format!(
            "{who}: no {what_kills} (the default kills it mid-drink)"
        )),
        Some(kill_after) => {
            let needed = grace + grpc_telemetry::SHUTDOWN_TIMEOUT + Duration::from_secs(1);
            if kill_after < needed {
                problems.push(format!(
                    "{who}: {what_kills} {kill_after:?} is shorter than the shutdown grace {grace:?} + span flush {:?} + 1 s",
                    grpc_telemetry::SHUTDOWN_TIMEOUT
                ));
            }
        }
    }
}

/// `host:port` of a `postgres://USER:PASSWORD@HOST:PORT/DATABASE` URL, with
/// its user and database (5432 when no port is given).
pub(crate) fn postgres_target(url: &str) -> Option<(String, u16, String, String)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (credentials, rest) = rest.rsplit_once('@')?;
    let user = credentials.split(':').next()?.to_owned();
    let (address, database) = rest.split_once('/')?;
    let database = database.split('?').next()?.to_owned();
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().ok()?),
        None => (address.to_owned(), 5432),
    };
    Some((host, port, user, database))
}

/// Where this test runs from: the workspace root (this crate is `tests/`).
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_owned()
}
