//! What is wrong with one container of ours: its probes, its database URL
//! and its OTLP endpoint.

use serde_norway::Value;

use super::{
    OTLP_GRPC_PORT,
    manifests::{Objects, Workload, as_port, environment, name, seq, text, value_text},
};
use crate::deploy::binaries::{Binary, Var, postgres_target};

/// Readiness: gRPC health on the server's own port, for its own service
/// (NOT_SERVING while it cannot take work). Liveness: gRPC health for
/// `liveness`, which only a server that no longer answers fails.
pub(crate) fn check_probes(
    who: &str,
    container: &Value,
    binary: Binary,
    port: u16,
    problems: &mut Vec<String>,
) {
    let expected = [
        ("readinessProbe", binary.service_name().unwrap_or_default()),
        ("livenessProbe", grpc_serving::LIVENESS),
    ];
    for (probe, service) in expected {
        let Some(grpc) = container.get(probe).and_then(|p| p.get("grpc")) else {
            problems.push(format!(
                "{who}: no gRPC {probe} (the servers serve grpc.health.v1)"
            ));
            continue;
        };
        let asked_port = grpc.get("port").and_then(as_port);
        if asked_port != Some(port) {
            problems.push(format!(
                "{who}: {probe} asks port {asked_port:?}, but it listens on {port}"
            ));
        }
        let asked = text(grpc, &["service"]).unwrap_or_default();
        if asked != service {
            problems.push(format!(
                "{who}: {probe} asks about {asked:?}; it should ask about {service:?}"
            ));
        }
    }
}

/// The café reads its database URL from a Secret; where the Secret is
/// generated here (components/postgres), its URL names the PostgreSQL
/// Service, on its port, with the server's user and database.
pub(crate) fn check_database(
    who: &str,
    container: &Value,
    objects: &Objects,
    services: &[(&String, &Value)],
    workloads: &[Workload<'_>],
    problems: &mut Vec<String>,
) {
    let database_url = seq(container.get("env"))
        .into_iter()
        .find(|var| var.get("name").and_then(Value::as_str) == Some("DATABASE_URL"));
    let Some(var) = database_url else {
        problems.push(format!(
            "{who}: no DATABASE_URL: cafés share a line in PostgreSQL"
        ));
        return;
    };
    let Some(reference) = var.get("valueFrom").and_then(|v| v.get("secretKeyRef")) else {
        problems.push(format!(
            "{who}: DATABASE_URL holds a password: take it from a Secret (valueFrom.secretKeyRef)"
        ));
        return;
    };
    let secret = text(reference, &["name"]).unwrap_or_default();
    let key = text(reference, &["key"]).unwrap_or_default();
    let Some(url) = objects.secrets.get(&secret).and_then(|s| s.get(&key)) else {
        // Made outside these files (overlays/external-database).
        return;
    };
    let Some((host, port, user, database)) = postgres_target(url) else {
        problems.push(format!("Secret {secret}: {key} is no postgres:// URL"));
        return;
    };
    let Some((_, service)) = services.iter().find(|(_, s)| name(s) == host) else {
        problems.push(format!(
            "Secret {secret}: names host {host}, which is no Service"
        ));
        return;
    };
    let service_port = seq(service.get("spec").and_then(|s| s.get("ports")))
        .into_iter()
        .find(|p| p.get("port").and_then(as_port) == Some(port));
    if service_port.is_none() {
        problems.push(format!(
            "Secret {secret}: Service {host} has no port {port}"
        ));
    }
    let selector = service
        .get("spec")
        .and_then(|s| s.get("selector"))
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    for workload in workloads.iter().filter(|w| {
        !selector.is_empty() && selector.iter().all(|(k, v)| w.labels.get(k) == Some(v))
    }) {
        for server in workload.containers() {
            let vars = environment(&server);
            let var = |name: &str| {
                vars.iter()
                    .find(|v| v.name == name)
                    .and_then(|v| v.value.clone())
            };
            let server_user = var("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
            if server_user != user {
                problems.push(format!(
                    "Secret {secret}: user {user}, but {} creates {server_user}",
                    workload.name
                ));
            }
            let server_database = var("POSTGRES_DB").unwrap_or_else(|| server_user.clone());
            if server_database != database {
                problems.push(format!(
                    "Secret {secret}: database {database}, but {} creates {server_database}",
                    workload.name
                ));
            }
        }
    }
}

/// An OTLP endpoint is a Service's OTLP/gRPC port.
pub(crate) fn check_otlp(
    who: &str,
    vars: &[Var],
    services: &[(&String, &Value)],
    workloads: &[Workload<'_>],
    problems: &mut Vec<String>,
) {
    let Some(endpoint) = vars
        .iter()
        .find(|v| v.name == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .and_then(|v| v.value.as_deref())
    else {
        return;
    };
    let target = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let Some((host, port)) = target.trim_end_matches('/').rsplit_once(':') else {
        problems.push(format!("{who}: OTLP endpoint {endpoint} has no port"));
        return;
    };
    if port != OTLP_GRPC_PORT.to_string() {
        problems.push(format!(
            "{who}: OTLP endpoint {endpoint}: we export OTLP over gRPC, port {OTLP_GRPC_PORT}"
        ));
    }
    let Some((_, service)) = services.iter().find(|(_, s)| name(s) == host) else {
        problems.push(format!(
            "{who}: OTLP endpoint {endpoint}: no Service {host}"
        ));
        return;
    };
    let reaches_collector = seq(service.get("spec").and_then(|s| s.get("ports")))
        .iter()
        .any(|p| {
            p.get("port").and_then(as_port) == Some(OTLP_GRPC_PORT)
                && workloads.iter().any(|w| {
                    w.container_ports()
                        .get(&p.get("targetPort").map(value_text).unwrap_or_default())
                        == Some(&OTLP_GRPC_PORT)
                })
        });
    if !reaches_collector {
        problems.push(format!(
            "{who}: Service {host} does not pass {OTLP_GRPC_PORT} to a collector's {OTLP_GRPC_PORT}"
        ));
    }
}
