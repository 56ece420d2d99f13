//! `docker-compose.yml` and the binaries, kept in step.
//!
//! Nothing on a developer's machine or in CI starts Docker, so nothing would
//! notice a compose file that sets `CAFE_BARISTA` instead of `CAFE_BARISTAS`
//! (the café would just run with its default) or a health check that asks
//! the wrong port (the stack would never come up). This test reads the
//! compose file and checks it against the same clap definitions that
//! `--help` prints:
//! - every environment variable a service sets is one its binary reads (a
//!   flag's `env`, or one of [`cafe_core::telemetry::ENV_VARS`]), with a value
//!   the flag's own parser accepts;
//! - every flag in an entrypoint, command or health check exists, with a
//!   valid value (the whole command line is parsed, subcommand and all);
//! - every port matches: published and exposed ports against the listen
//!   and metrics addresses (every server serves metrics), the café's barista endpoint against the barista's listen
//!   port, the client's `CAFE_SERVER` against the café's, each health check
//!   against its own server, the OTLP endpoint against the Jaeger service;
//! - health checks use the exec form and the `cafe` CLI, `depends_on` waits
//!   for our own services' health, the shutdown grace covers the longest
//!   drink and the stop grace period the shutdown grace plus the last span
//!   flush;
//! - the Dockerfile builds every binary the compose file runs.
//!
//! The second test breaks the file in the ways people do (a typo, a wrong
//! port) and checks that each one is caught: a check that cannot fail
//! would be worse than none.

use std::{collections::BTreeMap, ffi::OsString, net::SocketAddr, time::Duration};

use clap::{Arg, Command, CommandFactory, FromArgMatches};
use serde_norway::Value;

const COMPOSE: &str = include_str!("../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../Dockerfile");

/// OTLP over gRPC, the protocol our exporter speaks (4318 is OTLP/HTTP).
const OTLP_GRPC_PORT: u16 = 4317;

#[test]
fn compose_matches_the_binaries() {
    let problems = problems(COMPOSE, DOCKERFILE);
    assert!(
        problems.is_empty(),
        "docker-compose.yml and the binaries disagree:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn each_kind_of_drift_is_caught() {
    // (what goes wrong, text in the file, what it becomes)
    let breakages = [
        ("a variable typo", "CAFE_BARISTAS:", "CAFE_BARISTA:"),
        (
            "a value the flag refuses",
            "BARISTA_TIME_SCALE: \"0.05\"",
            "BARISTA_TIME_SCALE: \"fast\"",
        ),
        (
            "a flag typo in a command",
            "command: [\"--otlp-endpoint\"",
            "command: [\"--otlp-endpiont\"",
        ),
        (
            "a flag typo in the client's subcommand",
            "\"--customers\"",
            "\"--customer\"",
        ),
        (
            "a flag typo in a health check",
            "\"health\", \"--timeout\"",
            "\"health\", \"--timout\"",
        ),
        (
            "a published port that nothing listens on",
            "\"127.0.0.1:50051:50051\"",
            "\"127.0.0.1:50051:50052\"",
        ),
        (
            "a server listening on the container's loopback",
            "CAFE_LISTEN: \"0.0.0.0:50051\"",
            "CAFE_LISTEN: \"127.0.0.1:50051\"",
        ),
        (
            "a published metrics port that nothing listens on",
            "\"127.0.0.1:9051:9051\"",
            "\"127.0.0.1:9051:9052\"",
        ),
        (
            "metrics on the container's loopback",
            "BARISTA_METRICS_LISTEN: \"0.0.0.0:9061\"",
            "BARISTA_METRICS_LISTEN: \"127.0.0.1:9061\"",
        ),
        (
            "a server without metrics",
            "CAFE_METRICS_LISTEN: \"0.0.0.0:9051\"",
            "CAFE_LOG_FORMAT: \"text\"",
        ),
        (
            "a barista endpoint on the wrong port",
            "\"barista:50061\"",
            "\"barista:50062\"",
        ),
        (
            "a barista endpoint naming no service",
            "\"barista:50061\"",
            "\"baristas:50061\"",
        ),
        (
            "the OTLP/HTTP port for our gRPC exporter",
            "\"http://jaeger:4317\"]",
            "\"http://jaeger:4318\"]",
        ),
        (
            "a health check on another server's port",
            "\"http://127.0.0.1:50061\", \"health\"",
            "\"http://127.0.0.1:50051\", \"health\"",
        ),
        (
            "a client pointed at the wrong port",
            "CAFE_SERVER: \"http://cafe:50051\"",
            "CAFE_SERVER: \"http://cafe:50061\"",
        ),
        (
            "a variable the health check's CLI would read too",
            "CAFE_LISTEN: \"0.0.0.0:50051\"",
            "CAFE_LISTEN: \"0.0.0.0:50051\"\n      OTEL_SERVICE_NAME: \"cafe\"",
        ),
        (
            "a stop grace period shorter than the shutdown",
            "stop_grace_period: 20s",
            "stop_grace_period: 16s",
        ),
        (
            "a shutdown grace shorter than the longest drink",
            "BARISTA_SHUTDOWN_GRACE: \"15s\"",
            "BARISTA_SHUTDOWN_GRACE: \"10s\"",
        ),
        (
            "a health check in shell form",
            "test: [\"CMD\", \"cafe\"",
            "test: [\"CMD-SHELL\", \"cafe\"",
        ),
        (
            "depends_on that does not wait for health",
            "condition: service_healthy",
            "condition: service_started",
        ),
    ];
    for (what, from, to) in breakages {
        assert!(
            COMPOSE.contains(from),
            "{what}: {from:?} is no longer in docker-compose.yml; update this test"
        );
        let broken = COMPOSE.replacen(from, to, 1);
        let problems = problems(&broken, DOCKERFILE);
        assert!(
            !problems.is_empty(),
            "{what} ({from} -> {to}) went unnoticed"
        );
        // Shown with --nocapture, to see that each is caught for its reason.
        eprintln!("{what}: {}", problems.join("; "));
    }
    // And the Dockerfile side: a binary the compose file runs but the image
    // does not have.
    let dockerfile = DOCKERFILE.replacen("--bin cafe-barista ", "", 1);
    assert_ne!(dockerfile, DOCKERFILE);
    assert!(!problems(COMPOSE, &dockerfile).is_empty());
}

/// Our three binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Server,
    Barista,
    Cli,
}

impl Binary {
    fn from_name(name: &str) -> Option<Binary> {
        match name {
            "cafe-server" => Some(Binary::Server),
            "cafe-barista" => Some(Binary::Barista),
            "cafe" => Some(Binary::Cli),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Binary::Server => "cafe-server",
            Binary::Barista => "cafe-barista",
            Binary::Cli => "cafe",
        }
    }

    /// The real clap definition, with every `env` removed: the test's own
    /// environment must not fill in what the compose file leaves out.
    fn command(self) -> Command {
        without_env(match self {
            Binary::Server => cafe_server::Config::command(),
            Binary::Barista => cafe_barista::Config::command(),
            Binary::Cli => cafe_client::cli::Cli::command(),
        })
    }

    /// Every variable the binary reads through a flag, with that flag.
    fn env_args(self) -> BTreeMap<String, Arg> {
        let mut vars = BTreeMap::new();
        collect_env_args(
            &match self {
                Binary::Server => cafe_server::Config::command(),
                Binary::Barista => cafe_barista::Config::command(),
                Binary::Cli => cafe_client::cli::Cli::command(),
            },
            &mut vars,
        );
        vars
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

/// One service of the compose file, as far as these checks need it.
#[derive(Debug, Default)]
struct Service {
    name: String,
    image: Option<String>,
    entrypoint: Vec<String>,
    command: Vec<String>,
    environment: Vec<(String, String)>,
    /// Container ports from `ports` and `expose`.
    container_ports: Vec<u16>,
    healthcheck: Option<Vec<String>>,
    depends_on: Vec<(String, String)>,
    stop_grace_period: Option<String>,
}

/// What is wrong with `compose` (given `dockerfile`), one line per problem.
fn problems(compose: &str, dockerfile: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let services = match parse(compose, &mut problems) {
        Some(services) => services,
        None => return problems,
    };
    let ours: Vec<(&Service, Binary)> = services
        .values()
        .filter_map(|service| {
            let binary = Binary::from_name(service.entrypoint.first()?)?;
            Some((service, binary))
        })
        .collect();
    if ours.is_empty() {
        problems.push("no service runs cafe-server, cafe-barista or cafe".into());
    }
    let runs: BTreeMap<&str, Binary> = ours
        .iter()
        .map(|(service, binary)| (service.name.as_str(), *binary))
        .collect();
    // Where each server listens, for the cross-service checks.
    let mut listening: BTreeMap<&str, (Binary, SocketAddr)> = BTreeMap::new();
    for &(service, binary) in &ours {
        let name = &service.name;
        if !dockerfile.contains(&format!("--bin {} ", binary.name()))
            && !dockerfile.contains(&format!("--bin {}\n", binary.name()))
        {
            problems.push(format!(
                "{name}: runs {}, which the Dockerfile does not build",
                binary.name()
            ));
        }
        check_environment(service, binary, &mut problems);
        match binary {
            Binary::Server => {
                if let Some(config) =
                    parse_server::<cafe_server::Config>(service, binary, &mut problems)
                {
                    listening.insert(name, (binary, config.server.listen));
                }
            }
            Binary::Barista => {
                if let Some(config) =
                    parse_server::<cafe_barista::Config>(service, binary, &mut problems)
                {
                    listening.insert(name, (binary, config.server.listen));
                }
            }
            Binary::Cli => {}
        }
    }

    for &(service, binary) in &ours {
        let name = &service.name;
        match binary {
            Binary::Server => {
                let Some(config) =
                    parse_server::<cafe_server::Config>(service, binary, &mut Vec::new())
                else {
                    continue;
                };
                check_listen(
                    service,
                    config.server.listen,
                    config.server.metrics_listen,
                    &mut problems,
                );
                for endpoint in &config.barista_endpoints {
                    let endpoint = endpoint.to_string();
                    check_target(
                        name,
                        "barista endpoint",
                        &endpoint,
                        Binary::Barista,
                        &listening,
                        &runs,
                        &mut problems,
                    );
                }
                check_otlp(
                    service,
                    config.server.otlp_endpoint.as_deref(),
                    &services,
                    &mut problems,
                );
                check_server_ops(
                    service,
                    config.server.listen,
                    config.server.shutdown_grace,
                    config.server.time_scale,
                    &mut problems,
                );
            }
            Binary::Barista => {
                let Some(config) =
                    parse_server::<cafe_barista::Config>(service, binary, &mut Vec::new())
                else {
                    continue;
                };
                check_listen(
                    service,
                    config.server.listen,
                    config.server.metrics_listen,
                    &mut problems,
                );
                check_otlp(
                    service,
                    config.server.otlp_endpoint.as_deref(),
                    &services,
                    &mut problems,
                );
                check_server_ops(
                    service,
                    config.server.listen,
                    config.server.shutdown_grace,
                    config.server.time_scale,
                    &mut problems,
                );
            }
            Binary::Cli => {
                // The client's default command, with the variables that
                // apply before any subcommand (`CAFE_SERVER`).
                let mut args = vec!["cafe".to_owned()];
                for (var, value) in &service.environment {
                    if var == "CAFE_SERVER" {
                        args.push(format!("--server={value}"));
                    }
                }
                args.extend(service.entrypoint[1..].iter().cloned());
                args.extend(service.command.iter().cloned());
                match parse_cli(&args) {
                    Ok(cli) => {
                        let server = cli.server.strip_prefix("http://").unwrap_or(&cli.server);
                        check_target(
                            name,
                            "CAFE_SERVER",
                            server,
                            Binary::Server,
                            &listening,
                            &runs,
                            &mut problems,
                        );
                    }
                    Err(error) => problems.push(format!("{name}: `{}`: {error}", args.join(" "))),
                }
                let otlp = service
                    .environment
                    .iter()
                    .find(|(var, _)| var == "OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|(_, value)| value.as_str());
                check_otlp(service, otlp, &services, &mut problems);
            }
        }
    }

    for service in services.values() {
        for (dependency, condition) in &service.depends_on {
            match services.get(dependency) {
                None => problems.push(format!(
                    "{}: depends on {dependency}, which is no service",
                    service.name
                )),
                // Our own services are waited for until healthy; a trace
                // collector only until started (traces are optional).
                Some(target) if runs.contains_key(target.name.as_str()) => {
                    if condition != "service_healthy" {
                        problems.push(format!(
                            "{}: waits for {dependency} with {condition}; use service_healthy",
                            service.name
                        ));
                    }
                    if target.healthcheck.is_none() {
                        problems.push(format!(
                            "{}: waits for {dependency}'s health, but it has no healthcheck",
                            service.name
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
    problems
}

fn parse(compose: &str, problems: &mut Vec<String>) -> Option<BTreeMap<String, Service>> {
    let mut root: Value = match serde_norway::from_str(compose) {
        Ok(root) => root,
        Err(error) => {
            problems.push(format!("not YAML: {error}"));
            return None;
        }
    };
    // `<<: *cafe-image` merges the shared image and build into each service.
    if let Err(error) = root.apply_merge() {
        problems.push(format!("merge keys: {error}"));
        return None;
    }
    let Some(services) = root.get("services").and_then(Value::as_mapping) else {
        problems.push("no `services`".into());
        return None;
    };
    let mut parsed = BTreeMap::new();
    for (name, body) in services {
        let name = scalar(name).unwrap_or_default();
        let mut service = Service {
            name: name.clone(),
            image: body.get("image").and_then(scalar),
            ..Service::default()
        };
        service.entrypoint = exec_form(&name, "entrypoint", body.get("entrypoint"), problems);
        service.command = exec_form(&name, "command", body.get("command"), problems);
        match body.get("environment") {
            None => {}
            Some(Value::Mapping(vars)) => {
                for (var, value) in vars {
                    service.environment.push((
                        scalar(var).unwrap_or_default(),
                        scalar(value).unwrap_or_default(),
                    ));
                }
            }
            Some(_) => problems.push(format!("{name}: write `environment` as a map (VAR: value)")),
        }
        for (key, take_last) in [("ports", true), ("expose", false)] {
            for port in body
                .get(key)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let text = scalar(port).unwrap_or_default();
                let text = text.trim_end_matches("/tcp");
                let container = if take_last {
                    text.rsplit(':').next().unwrap_or(text)
                } else {
                    text
                };
                match container.parse() {
                    Ok(port) => service.container_ports.push(port),
                    Err(_) => {
                        problems.push(format!("{name}: cannot read the port {text:?} in {key}"))
                    }
                }
            }
        }
        if let Some(test) = body.get("healthcheck").and_then(|check| check.get("test")) {
            service.healthcheck = Some(exec_form(&name, "healthcheck test", Some(test), problems));
        }
        match body.get("depends_on") {
            None => {}
            Some(Value::Mapping(deps)) => {
                for (dependency, how) in deps {
                    let condition = how
                        .get("condition")
                        .and_then(scalar)
                        .unwrap_or_else(|| "service_started".into());
                    service
                        .depends_on
                        .push((scalar(dependency).unwrap_or_default(), condition));
                }
            }
            Some(_) => problems.push(format!(
                "{name}: write depends_on as a map with a condition for each"
            )),
        }
        service.stop_grace_period = body.get("stop_grace_period").and_then(scalar);
        parsed.insert(name, service);
    }
    Some(parsed)
}

/// An entrypoint, command or health check must be a list (exec form): a
/// string goes through a shell, which splits and expands it, and which would
/// sit between Docker's SIGTERM and our server.
fn exec_form(
    service: &str,
    what: &str,
    value: Option<&Value>,
    problems: &mut Vec<String>,
) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| scalar(item).unwrap_or_default())
            .collect(),
        Some(_) => {
            problems.push(format!("{service}: write `{what}` as a list (exec form)"));
            Vec::new()
        }
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Every variable is one the binary reads, with a value its flag accepts.
fn check_environment(service: &Service, binary: Binary, problems: &mut Vec<String>) {
    let env_args = binary.env_args();
    for (var, value) in &service.environment {
        if let Some(arg) = env_args.get(var) {
            if let Err(error) = check_value(arg, value) {
                problems.push(format!("{}: {var}={value:?}: {error}", service.name));
            }
        } else if !cafe_core::telemetry::ENV_VARS.contains(&var.as_str()) {
            problems.push(format!(
                "{}: sets {var}, which {} does not read",
                service.name,
                binary.name()
            ));
        }
    }
}

/// Runs the flag's own value parser on `value`.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let arg = arg
        .clone()
        .env(None::<&'static str>)
        .global(false)
        .required(false);
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

fn first_line(error: clap::Error) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// The server's effective configuration: its variables as flags, then its
/// entrypoint's and command's arguments, parsed by its real `Config`.
fn parse_server<C: FromArgMatches>(
    service: &Service,
    binary: Binary,
    problems: &mut Vec<String>,
) -> Option<C> {
    let env_args = binary.env_args();
    let mut args: Vec<OsString> = vec![binary.name().into()];
    for (var, value) in &service.environment {
        if let Some(long) = env_args.get(var).and_then(Arg::get_long) {
            args.push(format!("--{long}={value}").into());
        }
    }
    args.extend(service.entrypoint[1..].iter().map(OsString::from));
    args.extend(service.command.iter().map(OsString::from));
    let parsed = binary
        .command()
        .try_get_matches_from(&args)
        .and_then(|matches| C::from_arg_matches(&matches));
    match parsed {
        Ok(config) => Some(config),
        Err(error) => {
            problems.push(format!(
                "{}: {}: {}",
                service.name,
                binary.name(),
                first_line(error)
            ));
            None
        }
    }
}

fn parse_cli(args: &[String]) -> Result<cafe_client::cli::Cli, String> {
    Binary::Cli
        .command()
        .try_get_matches_from(args)
        .and_then(|matches| cafe_client::cli::Cli::from_arg_matches(&matches))
        .map_err(first_line)
}

/// A server in a container listens on every interface, gRPC and metrics
/// alike, on the ports the compose file publishes or exposes (and nothing
/// else), and serves metrics: the compose stack is what an operator runs.
fn check_listen(
    service: &Service,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
    problems: &mut Vec<String>,
) {
    let name = &service.name;
    let mut listening = vec![listen];
    match metrics {
        Some(metrics) => listening.push(metrics),
        None => problems.push(format!(
            "{name}: serves no metrics; set its METRICS_LISTEN variable (e.g. 0.0.0.0:9051)"
        )),
    }
    for address in &listening {
        if !address.ip().is_unspecified() {
            problems.push(format!("{name}: listens on {address}, which nothing outside its container can reach; use 0.0.0.0"));
        }
        if !service.container_ports.contains(&address.port()) {
            problems.push(format!(
                "{name}: publishes or exposes no port {} (it listens on {address})",
                address.port()
            ));
        }
    }
    for port in &service.container_ports {
        if !listening.iter().any(|address| address.port() == *port) {
            problems.push(format!(
                "{name}: port {port} in ports/expose, but it listens on {}",
                listening
                    .iter()
                    .map(|address| address.port().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
    }
}

/// `host:port` names a service running `binary`, on the port it listens on.
fn check_target(
    from: &str,
    what: &str,
    target: &str,
    binary: Binary,
    listening: &BTreeMap<&str, (Binary, SocketAddr)>,
    runs: &BTreeMap<&str, Binary>,
    problems: &mut Vec<String>,
) {
    let Some((host, port)) = target.trim_end_matches('/').rsplit_once(':') else {
        problems.push(format!("{from}: {what} {target:?} has no port"));
        return;
    };
    match listening.get(host) {
        Some((found, listen)) if *found == binary => {
            if port != listen.port().to_string() {
                problems.push(format!(
                    "{from}: {what} {target} uses port {port}, but {host} listens on {}",
                    listen.port()
                ));
            }
        }
        // A service that runs it but whose configuration did not parse has
        // its own problem reported already.
        _ if runs.get(host) == Some(&binary) => {}
        _ => problems.push(format!(
            "{from}: {what} {target}: {host} is no service running {}",
            binary.name()
        )),
    }
}

/// The OTLP endpoint is the Jaeger service, on OTLP/gRPC's port.
fn check_otlp(
    service: &Service,
    endpoint: Option<&str>,
    services: &BTreeMap<String, Service>,
    problems: &mut Vec<String>,
) {
    let name = &service.name;
    let Some(endpoint) = endpoint else {
        problems.push(format!("{name}: exports no traces (no OTLP endpoint)"));
        return;
    };
    let target = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let Some((host, port)) = target.rsplit_once(':') else {
        problems.push(format!("{name}: OTLP endpoint {endpoint} has no port"));
        return;
    };
    let jaeger = services.get(host).filter(|jaeger| {
        jaeger
            .image
            .as_deref()
            .is_some_and(|image| image.starts_with("jaegertracing/jaeger:"))
    });
    match jaeger {
        None => problems.push(format!(
            "{name}: OTLP endpoint {endpoint}: {host} is no Jaeger service"
        )),
        Some(jaeger) => {
            if port != OTLP_GRPC_PORT.to_string() {
                problems.push(format!("{name}: OTLP endpoint {endpoint}: we export OTLP over gRPC, port {OTLP_GRPC_PORT}"));
            }
            if !jaeger.container_ports.contains(&OTLP_GRPC_PORT) {
                problems.push(format!(
                    "{host}: does not expose {OTLP_GRPC_PORT} (OTLP/gRPC)"
                ));
            }
        }
    }
}

/// A server's health check asks its own port with `cafe health`, sees none
/// of the server's settings by accident, and the stop grace period lets it
/// finish its drinks and flush its spans.
fn check_server_ops(
    service: &Service,
    listen: SocketAddr,
    shutdown_grace: Duration,
    time_scale: cafe_core::menu::TimeScale,
    problems: &mut Vec<String>,
) {
    let name = &service.name;
    match &service.healthcheck {
        None => problems.push(format!("{name}: has no healthcheck")),
        Some(test) => {
            if test.first().map(String::as_str) != Some("CMD")
                || test.get(1).map(String::as_str) != Some("cafe")
            {
                problems.push(format!("{name}: the healthcheck must be [\"CMD\", \"cafe\", ..., \"health\"] (exec form, our CLI)"));
            } else {
                let args = test[1..].to_vec();
                match parse_cli(&args) {
                    Ok(cli) => {
                        if !matches!(cli.command, cafe_client::cli::Command::Health(_)) {
                            problems.push(format!(
                                "{name}: the healthcheck runs `{}`, not `cafe health`",
                                args.join(" ")
                            ));
                        }
                        let server = cli.server.strip_prefix("http://").unwrap_or(&cli.server);
                        let expected = [
                            format!("127.0.0.1:{}", listen.port()),
                            format!("localhost:{}", listen.port()),
                        ];
                        if !expected.iter().any(|e| e == server) {
                            problems.push(format!("{name}: the healthcheck asks {server}, but the server listens on port {}", listen.port()));
                        }
                    }
                    Err(error) => {
                        problems.push(format!("{name}: healthcheck `{}`: {error}", args.join(" ")))
                    }
                }
            }
        }
    }
    // The health check's `cafe` inherits this service's environment.
    let cli_vars = Binary::Cli.env_args();
    for (var, _) in &service.environment {
        if cli_vars.contains_key(var)
            || var == "OTEL_EXPORTER_OTLP_ENDPOINT"
            || var == "OTEL_SERVICE_NAME"
        {
            problems.push(format!(
                "{name}: sets {var}, which the healthcheck's `cafe` reads too; pass the server a flag instead"
            ));
        }
    }
    // The shutdown grace lets the longest drink at this time scale finish.
    let longest = cafe_core::menu::MENU
        .iter()
        .flat_map(|drink| {
            drink
                .sizes
                .iter()
                .map(move |size| drink.brew_time_for(*size, time_scale))
        })
        .max()
        .unwrap_or_default();
    if shutdown_grace < longest {
        problems.push(format!(
            "{name}: shutdown grace {shutdown_grace:?} is shorter than the longest brew at this time scale ({longest:?})"
        ));
    }
    match service
        .stop_grace_period
        .as_deref()
        .map(humantime::parse_duration)
    {
        None => problems.push(format!(
            "{name}: no stop_grace_period (Docker's 10 s default kills it mid-drink)"
        )),
        Some(Err(error)) => problems.push(format!("{name}: stop_grace_period: {error}")),
        Some(Ok(grace)) => {
            let needed =
                shutdown_grace + cafe_core::telemetry::SHUTDOWN_TIMEOUT + Duration::from_secs(1);
            if grace < needed {
                problems.push(format!(
                    "{name}: stop_grace_period {grace:?} is shorter than the shutdown grace {shutdown_grace:?} + span flush {:?} + 1 s",
                    cafe_core::telemetry::SHUTDOWN_TIMEOUT
                ));
            }
        }
    }
}
