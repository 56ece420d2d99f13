//! What is wrong with the compose files against the binaries: variables,
//! flags, ports, the database, the OTLP endpoint, the client's target and
//! each server's health check and grace periods.

use std::{collections::BTreeMap, net::SocketAddr};

use super::{
    Deployment, OTLP_GRPC_PORT,
    proxy::check_envoy,
    services::{Service, parse, without_scheme},
    tls::check_tls,
};
use crate::deploy::{
    binaries::{
        Binary, Parsed, ServerSettings, check_environment, check_grace, check_listen, parse_cli,
        postgres_target,
    },
    envoy::Envoy,
};

/// What is wrong with a deployment, one line per problem.
pub(crate) fn problems(deployment: &Deployment) -> Vec<String> {
    let mut problems = Vec::new();
    let dockerfile = deployment.file("Dockerfile");
    let compose: Vec<&str> = deployment
        .compose
        .iter()
        .map(|path| deployment.file(path))
        .collect();
    let services = match parse(&compose, &mut problems) {
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

    let envoy = check_envoy(&services, deployment, &listening, &runs, &mut problems);
    check_tls(
        &services,
        &servers,
        envoy.as_ref(),
        deployment,
        &mut problems,
    );

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
                let server = without_scheme(&cli.server);
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
pub(crate) fn check_database(
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

/// The client talks to Envoy, on a port Envoy listens on: any café may
/// answer, as on the host.
pub(crate) fn check_client_target(
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

/// `host:port` names a service running `binary`, on the port it listens on.
pub(crate) fn check_target(
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
pub(crate) fn check_otlp(
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
pub(crate) fn check_server_ops(
    service: &Service,
    settings: &ServerSettings,
    problems: &mut Vec<String>,
) {
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
                        let server = without_scheme(&cli.server);
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
