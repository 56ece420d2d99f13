//! The Envoy service of the compose files: its configuration file's
//! clusters against the cafés it fronts, and its own ports.

use std::{collections::BTreeMap, net::SocketAddr};

use super::{Deployment, checks::check_target, services::Service};
use crate::deploy::{
    binaries::Binary,
    envoy::{self, Envoy},
};

/// The Envoy service: it runs (`--config-path`) a configuration it mounts
/// from `deploy/envoy/`, publishes exactly its listeners and admin port,
/// waits for the cafés of its clusters, and each cluster names a service
/// running `cafe-server` on its listen port. Returns the parsed
/// configuration for the client's and the TLS checks.
pub(crate) fn check_envoy(
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
