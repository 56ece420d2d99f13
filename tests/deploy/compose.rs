//! `docker-compose.yml` against the binaries:
//! - every environment variable a service sets is one its binary reads (a
//!   flag's `env`, or one of [`cafe_core::telemetry::ENV_VARS`]), with a value
//!   the flag's own parser accepts;
//! - every flag in an entrypoint, command or health check exists, with a
//!   valid value (the whole command line is parsed, subcommand and all);
//! - every port matches: published and exposed ports against the listen
//!   and metrics addresses (every server serves metrics), the café's barista
//!   endpoint against the barista's listen port, its `DATABASE_URL` against
//!   the PostgreSQL service (user, database, port), the client's
//!   `CAFE_SERVER` against Envoy's listener and Envoy's cluster against the
//!   café's port ([`super::envoy`]), each health check against its own
//!   server, the OTLP endpoint against the Jaeger service;
//! - health checks use the exec form and the `cafe` CLI, `depends_on` waits
//!   for our own services' and PostgreSQL's health, the shutdown grace
//!   covers the longest drink and the stop grace period the shutdown grace
//!   plus the last span flush;
//! - the Dockerfile builds every binary the compose file runs.

use std::{collections::BTreeMap, net::SocketAddr};

use serde_norway::Value;

use super::{
    binaries::{
        Binary, Parsed, ServerSettings, Var, check_environment, check_grace, check_listen,
        parse_cli, postgres_target,
    },
    envoy::{self, Envoy},
};

const COMPOSE: &str = include_str!("../../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../Dockerfile");
const ENVOY: &str = include_str!("../../deploy/envoy/envoy.yaml");

/// OTLP over gRPC, the protocol our exporter speaks (4318 is OTLP/HTTP).
const OTLP_GRPC_PORT: u16 = 4317;

/// Where the compose file mounts Envoy's configuration from.
const ENVOY_CONFIG: &str = "./deploy/envoy/envoy.yaml";

#[test]
fn compose_matches_the_binaries() {
    let problems = problems(COMPOSE, DOCKERFILE, ENVOY);
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
        (
            "a variable typo",
            "CAFE_BARISTA_ENDPOINTS:",
            "CAFE_BARISTA_ENDPOINT:",
        ),
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
            "an exposed port that nothing listens on",
            "- \"50051\"",
            "- \"50052\"",
        ),
        (
            "a server listening on the container's loopback",
            "CAFE_LISTEN: \"0.0.0.0:50051\"",
            "CAFE_LISTEN: \"127.0.0.1:50051\"",
        ),
        (
            "an exposed metrics port that nothing listens on",
            "- \"9051\" # metrics",
            "- \"9052\" # metrics",
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
            "a café published on the host (two replicas cannot share a port)",
            "    expose:\n      - \"50051\"",
            "    ports:\n      - \"127.0.0.1:50052:50051\"\n    expose:\n      - \"50051\"",
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
            "a client pointed past Envoy's listener",
            "CAFE_SERVER: \"http://envoy:50051\"",
            "CAFE_SERVER: \"http://envoy:50061\"",
        ),
        (
            "a client pointed at a single café",
            "CAFE_SERVER: \"http://envoy:50051\"",
            "CAFE_SERVER: \"http://cafe:50051\"",
        ),
        (
            "a variable the health check's CLI would read too",
            "CAFE_LISTEN: \"0.0.0.0:50051\"",
            "CAFE_LISTEN: \"0.0.0.0:50051\"\n      OTEL_SERVICE_NAME: \"cafe\"",
        ),
        (
            "a stop grace period shorter than the shutdown",
            "stop_grace_period: 20s\n\n  postgres:",
            "stop_grace_period: 16s\n\n  postgres:",
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
            "barista:\n        condition: service_healthy",
            "barista:\n        condition: service_started",
        ),
        (
            "cafés that do not wait for PostgreSQL's health",
            "postgres:\n        condition: service_healthy",
            "postgres:\n        condition: service_started",
        ),
        (
            "a database URL with another user than the server's",
            "postgres://cafe:cafe@postgres",
            "postgres://postgres:cafe@postgres",
        ),
        (
            "a database URL with another password",
            "postgres://cafe:cafe@postgres",
            "postgres://cafe:secret@postgres",
        ),
        (
            "a database URL on the wrong port",
            "@postgres:5432/cafe",
            "@postgres:5433/cafe",
        ),
        (
            "the cafés on SQLite, which one café holds alone",
            "DATABASE_URL: \"postgres://cafe:cafe@postgres:5432/cafe\"",
            "CAFE_DATA_DIR: \"/var/lib/cafe\"",
        ),
        (
            "a PostgreSQL image that is not pinned",
            "image: postgres:17.6-alpine",
            "image: postgres:latest",
        ),
        (
            "an Envoy image that is not pinned",
            "image: envoyproxy/envoy:v1.34.1",
            "image: envoyproxy/envoy:latest",
        ),
        (
            "Envoy reading its configuration from elsewhere",
            "./deploy/envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro",
            "./envoy.yaml:/etc/envoy/envoy.yaml:ro",
        ),
        (
            "Envoy's published port that it does not listen on",
            "\"127.0.0.1:50051:50051\" # gRPC",
            "\"127.0.0.1:50051:50052\" # gRPC",
        ),
        (
            "Envoy started before the cafés are healthy",
            "      cafe:\n        condition: service_healthy",
            "      cafe:\n        condition: service_started",
        ),
    ];
    for (what, from, to) in breakages {
        assert!(
            COMPOSE.contains(from),
            "{what}: {from:?} is no longer in docker-compose.yml; update this test"
        );
        let broken = COMPOSE.replacen(from, to, 1);
        let problems = problems(&broken, DOCKERFILE, ENVOY);
        assert!(
            !problems.is_empty(),
            "{what} ({from} -> {to}) went unnoticed"
        );
        // Shown with --nocapture, to see that each is caught for its reason.
        eprintln!("{what}: {}", problems.join("; "));
    }
    // The Dockerfile side: a binary the compose file runs but the image
    // does not have.
    let dockerfile = DOCKERFILE.replacen("--bin cafe-barista ", "", 1);
    assert_ne!(dockerfile, DOCKERFILE);
    assert!(!problems(COMPOSE, &dockerfile, ENVOY).is_empty());
    // And Envoy's, against the compose services (its own checks are in
    // `super::envoy`).
    for (what, from, to) in [
        (
            "an Envoy cluster on a port no café listens on",
            "{ address: cafe, port_value: 50051 }",
            "{ address: cafe, port_value: 50061 }",
        ),
        (
            "an Envoy cluster naming no café",
            "{ address: cafe, port_value: 50051 }",
            "{ address: barista, port_value: 50051 }",
        ),
    ] {
        assert!(
            ENVOY.contains(from),
            "{what}: {from:?} is not in envoy.yaml"
        );
        let broken = ENVOY.replacen(from, to, 1);
        let problems = problems(COMPOSE, DOCKERFILE, &broken);
        assert!(!problems.is_empty(), "{what} went unnoticed");
        eprintln!("{what}: {}", problems.join("; "));
    }
}

/// One service of the compose file, as far as these checks need it.
#[derive(Debug, Default)]
struct Service {
    name: String,
    image: Option<String>,
    entrypoint: Vec<String>,
    command: Vec<String>,
    environment: Vec<Var>,
    /// Container ports from `ports`.
    published: Vec<u16>,
    /// Container ports from `ports` and `expose`.
    container_ports: Vec<u16>,
    volumes: Vec<String>,
    healthcheck: Option<Vec<String>>,
    depends_on: Vec<(String, String)>,
    stop_grace_period: Option<String>,
}

impl Service {
    fn var(&self, name: &str) -> Option<&str> {
        self.environment
            .iter()
            .find(|var| var.name == name)
            .and_then(|var| var.value.as_deref())
    }

    fn image_is(&self, repository: &str) -> bool {
        self.image
            .as_deref()
            .is_some_and(|image| image.starts_with(&format!("{repository}:")))
    }

    fn arguments(&self) -> Vec<String> {
        self.entrypoint[1..]
            .iter()
            .chain(&self.command)
            .cloned()
            .collect()
    }
}

/// What is wrong with `compose` (given `dockerfile` and Envoy's
/// configuration), one line per problem.
fn problems(compose: &str, dockerfile: &str, envoy_config: &str) -> Vec<String> {
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
    // Each server's configuration, for the cross-service checks.
    let mut servers: BTreeMap<&str, Parsed> = BTreeMap::new();
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
        check_environment(name, binary, &service.environment, &mut problems);
        if let Some(parsed) = Parsed::parse(
            name,
            binary,
            &service.environment,
            &service.arguments(),
            &mut problems,
        ) {
            servers.insert(name, parsed);
        }
    }
    let listening: BTreeMap<&str, (Binary, SocketAddr)> = servers
        .iter()
        .map(|(name, parsed)| (*name, (parsed.settings().binary, parsed.settings().listen)))
        .collect();

    let envoy = check_envoy(&services, envoy_config, &listening, &runs, &mut problems);

    for (name, parsed) in &servers {
        let service = &services[*name];
        let settings = parsed.settings();
        check_listen(name, &settings, &service.container_ports, &mut problems);
        check_otlp(service, parsed.otlp_endpoint(), &services, &mut problems);
        check_server_ops(service, &settings, &mut problems);
        if let Parsed::Cafe(config) = parsed {
            for endpoint in &config.barista_endpoints {
                check_target(
                    name,
                    "barista endpoint",
                    &endpoint.to_string(),
                    Binary::Barista,
                    &listening,
                    &runs,
                    &mut problems,
                );
            }
            check_database(service, config, &services, &mut problems);
        }
    }

    for &(service, binary) in &ours {
        if binary != Binary::Cli {
            continue;
        }
        let name = &service.name;
        // The client's default command, with the variables that apply
        // before any subcommand (`CAFE_SERVER`).
        let mut args = vec!["cafe".to_owned()];
        if let Some(server) = service.var("CAFE_SERVER") {
            args.push(format!("--server={server}"));
        }
        args.extend(service.arguments());
        match parse_cli(&args) {
            Ok(cli) => {
                let server = cli.server.strip_prefix("http://").unwrap_or(&cli.server);
                check_client_target(name, server, envoy.as_ref(), &services, &mut problems);
            }
            Err(error) => problems.push(format!("{name}: `{}`: {error}", args.join(" "))),
        }
        check_otlp(
            service,
            service.var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            &services,
            &mut problems,
        );
    }

    for service in services.values() {
        for (dependency, condition) in &service.depends_on {
            match services.get(dependency) {
                None => problems.push(format!(
                    "{}: depends on {dependency}, which is no service",
                    service.name
                )),
                // Our own services and the database are waited for until
                // healthy; a trace collector or a proxy only until started
                // (traces are optional; Envoy finds cafés as they come).
                Some(target)
                    if runs.contains_key(target.name.as_str()) || target.image_is("postgres") =>
                {
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
        // Images we do not build run at an exact version: `latest` (or no
        // tag) changes under you between two `up`s.
        if let Some(image) = &service.image
            && !runs.contains_key(service.name.as_str())
        {
            let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
            if !tag.chars().any(|c| c.is_ascii_digit()) || !tag.contains('.') {
                problems.push(format!(
                    "{}: image {image} is not pinned to a version",
                    service.name
                ));
            }
        }
    }
    problems
}

/// The café's line: PostgreSQL, shared by every replica, at the service the
/// URL names with that service's own user, password and database; and the
/// café waits for its health.
fn check_database(
    service: &Service,
    config: &cafe_server::Config,
    services: &BTreeMap<String, Service>,
    problems: &mut Vec<String>,
) {
    let name = &service.name;
    let url = config.store_url();
    let Some((host, port, user, database)) = postgres_target(&url) else {
        problems.push(format!(
            "{name}: keeps its orders at {url}; cafés sharing one line need a postgres:// DATABASE_URL"
        ));
        return;
    };
    let Some(postgres) = services.get(&host).filter(|s| s.image_is("postgres")) else {
        problems.push(format!(
            "{name}: DATABASE_URL names {host}, which is no PostgreSQL service"
        ));
        return;
    };
    if !postgres.container_ports.contains(&port) {
        problems.push(format!(
            "{name}: DATABASE_URL uses port {port}, which {host} does not expose"
        ));
    }
    if postgres.var("POSTGRES_USER").unwrap_or("postgres") != user {
        problems.push(format!(
            "{name}: DATABASE_URL's user {user} is not {host}'s POSTGRES_USER"
        ));
    }
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, password)| password);
    if password != postgres.var("POSTGRES_PASSWORD") {
        problems.push(format!(
            "{name}: DATABASE_URL's password is not {host}'s POSTGRES_PASSWORD"
        ));
    }
    let server_database = postgres
        .var("POSTGRES_DB")
        .or(postgres.var("POSTGRES_USER"))
        .unwrap_or("postgres");
    if server_database != database {
        problems.push(format!(
            "{name}: DATABASE_URL's database {database} is not the one {host} creates ({server_database})"
        ));
    }
    if !service.depends_on.iter().any(|(d, _)| *d == host) {
        problems.push(format!("{name}: does not wait for {host} (depends_on)"));
    }
    match &postgres.healthcheck {
        Some(test) if test.first().map(String::as_str) == Some("CMD") => {
            if test.get(1).map(String::as_str) != Some("pg_isready") {
                problems.push(format!("{host}: its healthcheck should run pg_isready"));
            }
        }
        _ => problems.push(format!(
            "{host}: needs an exec-form healthcheck (pg_isready) for the cafés to wait on"
        )),
    }
}

/// The Envoy service: it mounts `deploy/envoy/envoy.yaml` and runs it,
/// publishes exactly its listeners and admin port, waits for the cafés of
/// its clusters, and each cluster names a service running `cafe-server` on
/// its listen port. Returns the parsed configuration for the client's check.
fn check_envoy(
    services: &BTreeMap<String, Service>,
    config: &str,
    listening: &BTreeMap<&str, (Binary, SocketAddr)>,
    runs: &BTreeMap<&str, Binary>,
    problems: &mut Vec<String>,
) -> Option<(String, Envoy)> {
    let Some(service) = services.values().find(|s| s.image_is("envoyproxy/envoy")) else {
        problems.push("no Envoy service (envoyproxy/envoy) in front of the cafés".into());
        return None;
    };
    let name = &service.name;
    let envoy = match Envoy::parse(config) {
        Ok(envoy) => envoy,
        Err(error) => {
            problems.push(format!("{name}: deploy/envoy/envoy.yaml: {error}"));
            return None;
        }
    };
    let mounted = service.volumes.iter().find_map(|volume| {
        let mut parts = volume.split(':');
        (parts.next() == Some(ENVOY_CONFIG)).then(|| parts.next().unwrap_or_default().to_owned())
    });
    match mounted {
        None => problems.push(format!("{name}: does not mount {ENVOY_CONFIG}")),
        Some(path) => {
            let runs_it = service
                .command
                .windows(2)
                .any(|pair| pair[0] == "--config-path" && pair[1] == path)
                || service
                    .command
                    .iter()
                    .any(|arg| *arg == format!("--config-path={path}"));
            if !runs_it {
                problems.push(format!(
                    "{name}: mounts its configuration at {path} but does not run it (--config-path {path})"
                ));
            }
        }
    }
    for port in &service.published {
        if !envoy.listener_ports().contains(port) && Some(*port) != envoy.admin_port {
            problems.push(format!(
                "{name}: publishes port {port}, on which Envoy listens for nothing"
            ));
        }
    }
    for port in envoy.listener_ports() {
        if !service.published.contains(&port) {
            problems.push(format!("{name}: listens on {port} but does not publish it"));
        }
    }
    for cluster in envoy.clusters.values() {
        for (host, port) in &cluster.endpoints {
            check_target(
                name,
                &format!("cluster {}", cluster.name),
                &format!("{host}:{port}"),
                Binary::Server,
                listening,
                runs,
                problems,
            );
            let waits = service
                .depends_on
                .iter()
                .any(|(d, condition)| d == host && condition == "service_healthy");
            if !waits {
                problems.push(format!(
                    "{name}: does not wait for {host} to be healthy (depends_on)"
                ));
            }
        }
    }
    problems.extend(
        envoy::problems(&envoy)
            .into_iter()
            .map(|problem| format!("{name}: {problem}")),
    );
    Some((name.clone(), envoy))
}

/// The client talks to Envoy, on a port Envoy listens on: any café may
/// answer, as on the host.
fn check_client_target(
    from: &str,
    target: &str,
    envoy: Option<&(String, Envoy)>,
    services: &BTreeMap<String, Service>,
    problems: &mut Vec<String>,
) {
    let Some((host, port)) = target.trim_end_matches('/').rsplit_once(':') else {
        problems.push(format!("{from}: CAFE_SERVER {target:?} has no port"));
        return;
    };
    match envoy {
        Some((envoy_name, envoy)) if envoy_name == host => {
            if !envoy.listener_ports().iter().any(|p| p.to_string() == port) {
                problems.push(format!(
                    "{from}: CAFE_SERVER {target}: Envoy listens on {:?}, not {port}",
                    envoy.listener_ports()
                ));
            }
            if !services[from].depends_on.iter().any(|(d, _)| d == host) {
                problems.push(format!("{from}: does not wait for {host} (depends_on)"));
            }
        }
        Some((envoy_name, _)) => problems.push(format!(
            "{from}: CAFE_SERVER {target}: talk to {envoy_name}, which spreads the calls over every café"
        )),
        None => {}
    }
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
                    service.environment.push(Var {
                        name: scalar(var).unwrap_or_default(),
                        value: scalar(value),
                    });
                }
            }
            Some(_) => problems.push(format!("{name}: write `environment` as a map (VAR: value)")),
        }
        for (key, published) in [("ports", true), ("expose", false)] {
            for port in body
                .get(key)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let text = scalar(port).unwrap_or_default();
                let text = text.trim_end_matches("/tcp");
                let container = if published {
                    text.rsplit(':').next().unwrap_or(text)
                } else {
                    text
                };
                match container.parse() {
                    Ok(port) => {
                        service.container_ports.push(port);
                        if published {
                            service.published.push(port);
                        }
                    }
                    Err(_) => {
                        problems.push(format!("{name}: cannot read the port {text:?} in {key}"))
                    }
                }
            }
        }
        service.volumes = body
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(scalar)
            .collect();
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
    match services
        .get(host)
        .filter(|s| s.image_is("jaegertracing/jaeger"))
    {
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
/// of the server's settings by accident, the stop grace period lets it
/// finish its drinks and flush its spans, and a café is not published (it
/// runs as several replicas, which cannot share a host port; Envoy is the
/// one address).
fn check_server_ops(service: &Service, settings: &ServerSettings, problems: &mut Vec<String>) {
    let name = &service.name;
    let listen = settings.listen;
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
    for var in &service.environment {
        if cli_vars.contains_key(&var.name)
            || var.name == "OTEL_EXPORTER_OTLP_ENDPOINT"
            || var.name == "OTEL_SERVICE_NAME"
        {
            problems.push(format!(
                "{name}: sets {}, which the healthcheck's `cafe` reads too; pass the server a flag instead",
                var.name
            ));
        }
    }
    if settings.binary == Binary::Server && !service.published.is_empty() {
        problems.push(format!(
            "{name}: publishes {:?}; the cafés are replicas behind Envoy: expose them instead",
            service.published
        ));
    }
    let stop_grace = match service
        .stop_grace_period
        .as_deref()
        .map(humantime::parse_duration)
    {
        None => None,
        Some(Err(error)) => {
            problems.push(format!("{name}: stop_grace_period: {error}"));
            return;
        }
        Some(Ok(grace)) => Some(grace),
    };
    check_grace(name, settings, stop_grace, "stop_grace_period", problems);
}
