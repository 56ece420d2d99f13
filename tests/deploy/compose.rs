//! `docker-compose.yml` against the binaries:
//! - every environment variable a service sets is one its binary reads (a
//!   flag's `env`, or one of [`grpc_telemetry::ENV_VARS`]), with a value
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
//! - the Dockerfile builds every binary the compose file runs;
//! - with `docker-compose.tls.yml` merged on top (as Compose merges it), all
//!   of the above still holds, and the TLS fits together: every `.pem` a
//!   service or Envoy reads is in its `./certs` mount and is a file
//!   `docker/make-certs.sh` writes; whoever serves TLS is dialled with
//!   `https://` (health checks, the client, Envoy's cluster) and whoever
//!   serves plaintext without it; and each certificate names the host it is
//!   dialled by (`envoy` and `localhost` for Envoy's, `cafe` for the cafés',
//!   `barista` for the baristas'), the command a compose file's header
//!   gives for the host (`cafe --server https://localhost:50051 ...`)
//!   included.

use std::{collections::BTreeMap, net::SocketAddr};

use serde_norway::Value;

use super::{
    binaries::{
        Binary, Parsed, ServerSettings, Var, check_environment, check_grace, check_listen,
        parse_cli, postgres_target,
    },
    envoy::{self, Envoy},
};

/// OTLP over gRPC, the protocol our exporter speaks (4318 is OTLP/HTTP).
const OTLP_GRPC_PORT: u16 = 4317;

/// Where the compose files mount the certificates from.
const CERTS: &str = "./certs";

/// The files one way of running compose reads, by their path in the
/// repository: the compose file and its overrides (merged in order), the
/// Dockerfile, Envoy's configurations and the script that makes the
/// certificates.
#[derive(Clone)]
struct Deployment {
    compose: Vec<&'static str>,
    files: BTreeMap<&'static str, String>,
}

impl Deployment {
    /// `docker compose up`.
    fn plain() -> Deployment {
        let files = [
            (
                "docker-compose.yml",
                include_str!("../../docker-compose.yml"),
            ),
            (
                "docker-compose.tls.yml",
                include_str!("../../docker-compose.tls.yml"),
            ),
            ("Dockerfile", include_str!("../../Dockerfile")),
            (
                "deploy/envoy/envoy.yaml",
                include_str!("../../deploy/envoy/envoy.yaml"),
            ),
            (
                "deploy/envoy/envoy.tls.yaml",
                include_str!("../../deploy/envoy/envoy.tls.yaml"),
            ),
            (
                "docker/make-certs.sh",
                include_str!("../../docker/make-certs.sh"),
            ),
        ];
        Deployment {
            compose: vec!["docker-compose.yml"],
            files: files
                .into_iter()
                .map(|(path, text)| (path, text.to_owned()))
                .collect(),
        }
    }

    /// `docker compose -f docker-compose.yml -f docker-compose.tls.yml up`.
    fn tls() -> Deployment {
        let mut deployment = Deployment::plain();
        deployment.compose.push("docker-compose.tls.yml");
        deployment
    }

    /// This deployment with `from` in `file` replaced by `to` (once).
    fn with(&self, file: &str, from: &str, to: &str) -> Deployment {
        let mut broken = self.clone();
        let text = broken.files.get_mut(file).expect("a known file");
        assert!(
            text.contains(from),
            "{from:?} is no longer in {file}; update this test"
        );
        *text = text.replacen(from, to, 1);
        broken
    }

    fn file(&self, path: &str) -> &str {
        &self.files[path]
    }
}

#[test]
fn compose_matches_the_binaries() {
    let problems = problems(&Deployment::plain());
    assert!(
        problems.is_empty(),
        "docker-compose.yml and the binaries disagree:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn the_tls_override_matches_the_binaries() {
    let problems = problems(&Deployment::tls());
    assert!(
        problems.is_empty(),
        "docker-compose.yml with docker-compose.tls.yml, and the binaries, disagree:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn each_kind_of_tls_drift_is_caught() {
    // (what goes wrong, file, text in the file, what it becomes)
    let breakages = [
        (
            "Envoy left on the plaintext configuration, in front of TLS cafés",
            "docker-compose.tls.yml",
            "\"/etc/envoy/envoy.tls.yaml\", \"--log-level\"",
            "\"/etc/envoy/envoy.yaml\", \"--log-level\"",
        ),
        (
            "Envoy running a file that is not mounted",
            "docker-compose.tls.yml",
            "./deploy/envoy/envoy.tls.yaml:/etc/envoy/envoy.tls.yaml:ro",
            "./deploy/envoy/envoy.tls.yaml:/etc/envoy/tls.yaml:ro",
        ),
        (
            "Envoy without the certificates",
            "docker-compose.tls.yml",
            "envoy.tls.yaml:ro\n      - ./certs:/certs:ro",
            "envoy.tls.yaml:ro",
        ),
        (
            "a client that bypasses Envoy",
            "docker-compose.tls.yml",
            "CAFE_SERVER: \"https://envoy:50051\"",
            "CAFE_SERVER: \"https://cafe:50051\"",
        ),
        (
            "a plaintext client to Envoy's TLS",
            "docker-compose.tls.yml",
            "CAFE_SERVER: \"https://envoy:50051\"",
            "CAFE_SERVER: \"http://envoy:50051\"",
        ),
        (
            "a TLS client that does not trust the private CA",
            "docker-compose.tls.yml",
            "      CAFE_CA: /certs/ca.pem\n",
            "",
        ),
        (
            "a plaintext health check of a TLS café",
            "docker-compose.tls.yml",
            "\"https://127.0.0.1:50051\"",
            "\"http://127.0.0.1:50051\"",
        ),
        (
            "a header's command that dials Envoy's TLS in plaintext",
            "docker-compose.tls.yml",
            "cafe --server https://localhost:50051",
            "cafe --server http://localhost:50051",
        ),
        (
            "a certificate make-certs.sh does not write",
            "docker-compose.tls.yml",
            "CAFE_TLS_CERT: /certs/cafe.pem",
            "CAFE_TLS_CERT: /certs/cafe-cert.pem",
        ),
        (
            "a certificate outside the mount",
            "docker-compose.tls.yml",
            "BARISTA_TLS_CERT: /certs/barista.pem",
            "BARISTA_TLS_CERT: /etc/certs/barista.pem",
        ),
        (
            "the café's certificate without the name the client dials",
            "docker/make-certs.sh",
            "DNS:cafe,DNS:envoy,",
            "DNS:cafe,",
        ),
        (
            "the café's certificate without the name Envoy checks",
            "docker/make-certs.sh",
            "\"DNS:cafe,DNS:envoy,",
            "\"DNS:envoy,",
        ),
        (
            "the barista's certificate without its service's name",
            "docker/make-certs.sh",
            "\"DNS:barista,",
            "\"",
        ),
        (
            "Envoy presenting a certificate for the baristas",
            "deploy/envoy/envoy.tls.yaml",
            "certificate_chain: { filename: /certs/cafe.pem }\n                    private_key: { filename: /certs/cafe-key.pem }",
            "certificate_chain: { filename: /certs/barista.pem }\n                    private_key: { filename: /certs/barista-key.pem }",
        ),
        (
            "Envoy trusting another CA than the cafés' certificates' one",
            "deploy/envoy/envoy.tls.yaml",
            "trusted_ca: { filename: /certs/ca.pem }",
            "trusted_ca: { filename: /certs/cafe.pem }",
        ),
        (
            "Envoy reading its certificates from outside the mount",
            "deploy/envoy/envoy.tls.yaml",
            "trusted_ca: { filename: /certs/ca.pem }",
            "trusted_ca: { filename: /etc/ssl/ca.pem }",
        ),
    ];
    for (what, file, from, to) in breakages {
        let problems = problems(&Deployment::tls().with(file, from, to));
        assert!(
            !problems.is_empty(),
            "{what} ({file}: {from} -> {to}) went unnoticed"
        );
        eprintln!("{what}: {}", problems.join("; "));
    }
    // And the plain deployment refuses TLS where its cafés have none.
    let problems = problems(&Deployment::plain().with(
        "docker-compose.yml",
        "./deploy/envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro",
        "./deploy/envoy/envoy.tls.yaml:/etc/envoy/envoy.yaml:ro",
    ));
    assert!(
        !problems.is_empty(),
        "TLS Envoy in front of plaintext cafés went unnoticed"
    );
    eprintln!(
        "TLS Envoy in front of plaintext cafés: {}",
        problems.join("; ")
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
        let problems = problems(&Deployment::plain().with("docker-compose.yml", from, to));
        assert!(
            !problems.is_empty(),
            "{what} ({from} -> {to}) went unnoticed"
        );
        // Shown with --nocapture, to see that each is caught for its reason.
        eprintln!("{what}: {}", problems.join("; "));
    }
    // The Dockerfile side: a binary the compose file runs but the image
    // does not have.
    let broken = Deployment::plain().with("Dockerfile", "--bin cafe-barista ", "");
    assert!(!problems(&broken).is_empty());
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
        let problems = problems(&Deployment::plain().with("deploy/envoy/envoy.yaml", from, to));
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

/// What is wrong with a deployment, one line per problem.
fn problems(deployment: &Deployment) -> Vec<String> {
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

/// The Envoy service: it runs (`--config-path`) a configuration it mounts
/// from `deploy/envoy/`, publishes exactly its listeners and admin port,
/// waits for the cafés of its clusters, and each cluster names a service
/// running `cafe-server` on its listen port. Returns the parsed
/// configuration for the client's and the TLS checks.
fn check_envoy(
    services: &BTreeMap<String, Service>,
    deployment: &Deployment,
    listening: &BTreeMap<&str, (Binary, SocketAddr)>,
    runs: &BTreeMap<&str, Binary>,
    problems: &mut Vec<String>,
) -> Option<(String, Envoy)> {
    let Some(service) = services.values().find(|s| s.image_is("envoyproxy/envoy")) else {
        problems.push("no Envoy service (envoyproxy/envoy) in front of the cafés".into());
        return None;
    };
    let name = &service.name;
    let runs_path = service
        .command
        .windows(2)
        .find(|pair| pair[0] == "--config-path")
        .map(|pair| pair[1].clone())
        .or_else(|| {
            service
                .command
                .iter()
                .find_map(|arg| arg.strip_prefix("--config-path=").map(str::to_owned))
        });
    let Some(runs_path) = runs_path else {
        problems.push(format!("{name}: runs no configuration (--config-path)"));
        return None;
    };
    let source = service.volumes.iter().find_map(|volume| {
        let mut parts = volume.split(':');
        let source = parts.next()?;
        (parts.next() == Some(runs_path.as_str())).then_some(source)
    });
    let Some(source) = source else {
        problems.push(format!("{name}: runs {runs_path}, which no volume mounts"));
        return None;
    };
    let file = source.strip_prefix("./").unwrap_or(source);
    let Some(config) = deployment
        .files
        .get(file)
        .filter(|_| file.starts_with("deploy/envoy/"))
    else {
        problems.push(format!(
            "{name}: mounts {source} as its configuration; it should be one of deploy/envoy/"
        ));
        return None;
    };
    let envoy = match Envoy::parse(config) {
        Ok(envoy) => envoy,
        Err(error) => {
            problems.push(format!("{name}: {file}: {error}"));
            return None;
        }
    };
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

/// The services of `files` (a compose file and its overrides), merged as
/// Compose merges them.
fn parse(files: &[&str], problems: &mut Vec<String>) -> Option<BTreeMap<String, Service>> {
    let mut root = Value::Null;
    for (i, file) in files.iter().enumerate() {
        let mut value: Value = match serde_norway::from_str(file) {
            Ok(value) => value,
            Err(error) => {
                problems.push(format!("compose file {i}: not YAML: {error}"));
                return None;
            }
        };
        // `<<: *cafe-image` merges the shared image and build into each service.
        if let Err(error) = value.apply_merge() {
            problems.push(format!("compose file {i}: merge keys: {error}"));
            return None;
        }
        overlay(&mut root, value, "");
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

/// Merges an override file's `value` into `base` the way Compose does: maps
/// key by key (`environment`, `healthcheck`), `volumes` by the path they
/// mount at (an override's mount replaces the base's at the same path),
/// `ports` and `expose` appended, anything else (a `command`, a health
/// check's `test`) replaced.
fn overlay(base: &mut Value, value: Value, key: &str) {
    match (base, value) {
        (Value::Mapping(base), Value::Mapping(value)) => {
            for (k, v) in value {
                let name = scalar(&k).unwrap_or_default();
                match base.get_mut(&k) {
                    Some(existing) => overlay(existing, v, &name),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(base), Value::Sequence(value)) if key == "volumes" => {
            let target = |v: &Value| scalar(v).and_then(|v| v.split(':').nth(1).map(str::to_owned));
            for volume in value {
                base.retain(|existing| target(existing) != target(&volume));
                base.push(volume);
            }
        }
        (Value::Sequence(base), Value::Sequence(value)) if key == "ports" || key == "expose" => {
            base.extend(value);
        }
        (base, value) => *base = value,
    }
}

/// `host:port` of an address, without `http://` or `https://`.
fn without_scheme(address: &str) -> &str {
    address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address)
}

/// The certificates `docker/make-certs.sh` writes, by file name, each with
/// the host names and addresses it is for (none for keys and the CA).
fn certificates(make_certs: &str) -> BTreeMap<String, Vec<String>> {
    let mut files = BTreeMap::from([("ca.pem".to_owned(), Vec::new())]);
    for line in make_certs.lines() {
        // `issue NAME "DNS:a,IP:b"`
        let Some(rest) = line.trim().strip_prefix("issue ") else {
            continue;
        };
        let Some((name, names)) = rest.split_once(' ') else {
            continue;
        };
        let names = names
            .trim_matches('"')
            .split(',')
            .filter_map(|n| n.split_once(':').map(|(_, n)| n.to_owned()))
            .collect();
        files.insert(format!("{name}.pem"), names);
        files.insert(format!("{name}-key.pem"), Vec::new());
    }
    files
}

/// The file of `make-certs.sh` that `path`, in `service`'s container, is:
/// `path` must be under a mount of ./certs, and a file the script writes.
fn certificate_file(
    service: &Service,
    path: &str,
    certs: &BTreeMap<String, Vec<String>>,
    problems: &mut Vec<String>,
) -> Option<String> {
    let name = &service.name;
    let file = service.volumes.iter().find_map(|volume| {
        let mut parts = volume.split(':');
        if parts.next() != Some(CERTS) {
            return None;
        }
        let target = parts.next()?.trim_end_matches('/');
        path.strip_prefix(&format!("{target}/"))
    });
    let Some(file) = file else {
        problems.push(format!(
            "{name}: reads {path}, which is in no mount of {CERTS}"
        ));
        return None;
    };
    if !certs.contains_key(file) {
        problems.push(format!(
            "{name}: reads {path}, but docker/make-certs.sh writes no {file} (it writes {:?})",
            certs.keys().collect::<Vec<_>>()
        ));
        return None;
    }
    Some(file.to_owned())
}

/// TLS fits together across the services: see the module's documentation.
fn check_tls(
    services: &BTreeMap<String, Service>,
    servers: &BTreeMap<&str, Parsed>,
    envoy: Option<&(String, Envoy)>,
    deployment: &Deployment,
    problems: &mut Vec<String>,
) {
    let certs = certificates(deployment.file("docker/make-certs.sh"));
    let names_of = |file: &Option<String>| -> Vec<String> {
        file.as_ref()
            .and_then(|f| certs.get(f))
            .cloned()
            .unwrap_or_default()
    };
    // Every .pem anyone reads is in its mount, and a file the script writes.
    for service in services.values() {
        let mut paths: Vec<String> = service
            .environment
            .iter()
            .filter_map(|var| var.value.clone())
            .chain(service.healthcheck.iter().flatten().cloned())
            .filter(|value| value.ends_with(".pem"))
            .collect();
        if let Some((envoy_name, envoy)) = envoy
            && *envoy_name == service.name
        {
            for (_, tls) in envoy.listener_tls() {
                for (cert, key) in tls.iter().flat_map(|tls| &tls.certificates) {
                    paths.extend([cert.clone(), key.clone()]);
                }
            }
            for cluster in envoy.clusters.values() {
                paths.extend(cluster.tls.iter().filter_map(|tls| tls.trusted_ca.clone()));
            }
        }
        for path in paths {
            certificate_file(service, &path, &certs, problems);
        }
    }
    // Whether each of our servers serves TLS, and the names its certificate
    // has (none when the file is not one of the script's: reported above).
    let mut presents: BTreeMap<&str, Option<Vec<String>>> = BTreeMap::new();
    for (name, parsed) in servers {
        let service = &services[*name];
        let cert = match parsed {
            Parsed::Cafe(config) => config.server.tls_cert.clone(),
            Parsed::Barista(config) => config.server.tls_cert.clone(),
        };
        let names = cert.map(|path| {
            let file = certificate_file(service, &path.to_string_lossy(), &certs, &mut Vec::new());
            names_of(&file)
        });
        if let Some(test) = &service.healthcheck
            && let Some(server) = test.windows(2).find(|p| p[0] == "--server").map(|p| &p[1])
        {
            check_dialled(name, "its healthcheck", server, names.as_deref(), problems);
        }
        presents.insert(name, names);
    }
    // The café to its baristas.
    for (name, parsed) in servers {
        let Parsed::Cafe(config) = parsed else {
            continue;
        };
        for endpoint in &config.barista_endpoints {
            let endpoint = endpoint.to_string();
            let host = endpoint
                .rsplit_once(':')
                .map_or(endpoint.as_str(), |(h, _)| h);
            let Some(names) = presents.get(host) else {
                continue;
            };
            let scheme = if config.barista_ca.is_some() {
                "https"
            } else {
                "http"
            };
            check_dialled(
                name,
                "barista endpoint",
                &format!("{scheme}://{endpoint}"),
                names.as_deref(),
                problems,
            );
            if let Some(ca) = &config.barista_ca {
                check_ca(&services[*name], &ca.to_string_lossy(), &certs, problems);
            }
        }
    }
    let Some((envoy_name, envoy)) = envoy else {
        return;
    };
    let envoy_service = &services[envoy_name];
    // Envoy to the cafés: TLS exactly when they serve it, to the name their
    // certificate has, trusting the CA.
    for cluster in envoy.clusters.values() {
        for (host, _) in &cluster.endpoints {
            let Some(names) = presents.get(host.as_str()) else {
                continue;
            };
            match (&cluster.tls, names) {
                (None, Some(_)) => problems.push(format!(
                    "{envoy_name}: cluster {}: {host} serves TLS only, but Envoy speaks plaintext to it (no transport_socket): every call and health check fails",
                    cluster.name
                )),
                (Some(_), None) => problems.push(format!(
                    "{envoy_name}: cluster {}: speaks TLS to {host}, which serves plaintext",
                    cluster.name
                )),
                (Some(tls), Some(names)) => {
                    if let Some(sni) = &tls.sni
                        && !names.is_empty()
                        && !names.contains(sni)
                    {
                        problems.push(format!(
                            "{envoy_name}: cluster {}: checks for {sni}, but {host}'s certificate names {names:?}",
                            cluster.name
                        ));
                    }
                    if let Some(ca) = &tls.trusted_ca {
                        check_ca(envoy_service, ca, &certs, problems);
                    }
                }
                (None, None) => {}
            }
        }
    }
    // The clients to Envoy: `https://` exactly when it ends TLS, to a name
    // its certificate has; and `localhost`, which the CLI on the host dials.
    for (port, tls) in envoy.listener_tls() {
        let file = tls
            .and_then(|tls| tls.certificates.first())
            .and_then(|(cert, key)| {
                let cert = certificate_file(envoy_service, cert, &certs, &mut Vec::new())?;
                let key = certificate_file(envoy_service, key, &certs, &mut Vec::new())?;
                if key != cert.replace(".pem", "-key.pem") {
                    problems.push(format!("{envoy_name}: presents {cert} with the key {key}"));
                }
                Some(cert)
            });
        let names = tls.map(|_| names_of(&file));
        if file.is_some()
            && let Some(names) = &names
            && !names.iter().any(|n| n == "localhost")
        {
            problems.push(format!(
                "{envoy_name}: ends TLS on {port} with a certificate for {names:?}; the CLI on the host dials localhost"
            ));
        }
        // The commands the compose files' headers give for the host, e.g.
        // `#   cafe --server https://localhost:50051 --ca certs/ca.pem menu`.
        for path in &deployment.compose {
            for line in deployment.file(path).lines() {
                let Some(server) = line
                    .trim_start_matches(['#', ' '])
                    .strip_prefix("cafe --server ")
                    .and_then(|rest| rest.split_whitespace().next())
                else {
                    continue;
                };
                if without_scheme(server).ends_with(&format!(":{port}")) {
                    let what = "the command in its header";
                    check_dialled(path, what, server, names.as_deref(), problems);
                }
            }
        }
        for service in services.values() {
            let Some(server) = service.var("CAFE_SERVER") else {
                continue;
            };
            if !without_scheme(server).ends_with(&format!(":{port}"))
                || !without_scheme(server).starts_with(&format!("{envoy_name}:"))
            {
                continue;
            }
            check_dialled(
                &service.name,
                "CAFE_SERVER",
                server,
                names.as_deref(),
                problems,
            );
            if server.starts_with("https://") {
                match service.var("CAFE_CA") {
                    None => problems.push(format!(
                        "{}: dials {server} without CAFE_CA; the private CA's certificate is trusted by nothing else",
                        service.name
                    )),
                    Some(ca) => check_ca(service, ca, &certs, problems),
                }
            }
        }
    }
}

/// A dialled address (`scheme://host:port`) uses `https://` exactly when its
/// server serves TLS (`names`: the names its certificate has), and then a
/// host its certificate names.
fn check_dialled(
    from: &str,
    what: &str,
    address: &str,
    names: Option<&[String]>,
    problems: &mut Vec<String>,
) {
    let https = address.starts_with("https://");
    let serves_tls = names.is_some();
    let names = names.unwrap_or_default();
    if https != serves_tls {
        let hint = if serves_tls {
            "it serves TLS only: use https://"
        } else {
            "it serves plaintext: use http://"
        };
        problems.push(format!("{from}: {what} {address}: {hint}"));
        return;
    }
    let host = without_scheme(address)
        .rsplit_once(':')
        .map_or("", |(host, _)| host);
    // No names: the certificate is no file of the script's, said already.
    if https && !names.is_empty() && !names.iter().any(|n| n == host) {
        problems.push(format!(
            "{from}: {what} {address}: the certificate there names {names:?}, not {host} (docker/make-certs.sh)"
        ));
    }
}

/// A file trusted as the CA is the CA make-certs.sh writes.
fn check_ca(
    service: &Service,
    path: &str,
    certs: &BTreeMap<String, Vec<String>>,
    problems: &mut Vec<String>,
) {
    if let Some(file) = certificate_file(service, path, certs, &mut Vec::new())
        && file != "ca.pem"
    {
        problems.push(format!(
            "{}: trusts {path} as the CA; make-certs.sh's CA is ca.pem",
            service.name
        ));
    }
}
