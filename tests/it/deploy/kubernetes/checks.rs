//! What is wrong with the manifests as a whole: workloads, Services,
//! ports, Secrets, resources and users, each against the binaries.

use std::time::Duration;

use serde_norway::Value;

use super::{
    DOCKERFILE,
    containers::{check_database, check_otlp, check_probes},
    manifests::{Tree, Workload, as_port, collect, environment, kind, name, seq, text, value_text},
};
use crate::deploy::binaries::{Binary, Parsed, check_environment, check_grace, check_listen};

pub(crate) fn problems(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let objects = collect(tree, &mut problems);
    let dockerfile_user = DOCKERFILE
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .and_then(|user| user.split(':').next())
        .and_then(|uid| uid.trim().parse::<i64>().ok())
        .expect("the Dockerfile's USER uid");

    let workloads: Vec<Workload<'_>> = objects
        .resources
        .iter()
        .filter(|(_, o)| matches!(kind(o).as_str(), "Deployment" | "StatefulSet"))
        .filter_map(|(file, object)| {
            let spec = object.get("spec")?;
            let pod = spec.get("template")?;
            Some(Workload {
                kind: kind(object),
                name: name(object),
                file,
                spec,
                pod,
                labels: pod
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(Value::as_mapping)
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect();
    let services: Vec<(&String, &Value)> = objects
        .resources
        .iter()
        .filter(|(_, o)| kind(o) == "Service")
        .map(|(file, o)| (file, o))
        .collect();
    let selected = |selector: Option<&Value>| -> Vec<&Workload<'_>> {
        let Some(selector) = selector.and_then(Value::as_mapping) else {
            return Vec::new();
        };
        workloads
            .iter()
            .filter(|w| {
                !selector.is_empty()
                    && selector
                        .iter()
                        .all(|(key, value)| w.labels.get(key) == Some(value))
            })
            .collect()
    };

    // Every Service selects pods, on ports they have.
    for (file, service) in &services {
        let name = name(service);
        let targets = selected(service.get("spec").and_then(|s| s.get("selector")));
        if targets.is_empty() {
            problems.push(format!(
                "Service {name} ({file}): selects no workload's pods"
            ));
        }
        for port in seq(service.get("spec").and_then(|s| s.get("ports"))) {
            let target = port
                .get("targetPort")
                .or(port.get("port"))
                .map(value_text)
                .unwrap_or_default();
            for workload in &targets {
                if !workload.container_ports().contains_key(&target) {
                    problems.push(format!(
                        "Service {name} ({file}): targetPort {target} is no container port of {}",
                        workload.name
                    ));
                }
            }
        }
    }
    // Every Deployment of ours has a PodDisruptionBudget.
    let budgets: Vec<&Value> = objects
        .resources
        .iter()
        .filter(|(_, o)| kind(o) == "PodDisruptionBudget")
        .map(|(_, o)| o)
        .collect();

    // Where each server listens, by workload, for the cross checks.
    let mut servers: Vec<(&Workload<'_>, Parsed)> = Vec::new();
    for workload in &workloads {
        if workload.spec.get("replicas").is_none() {
            problems.push(format!(
                "{} {}: say how many replicas",
                workload.kind, workload.name
            ));
        }
        let pod_security = workload
            .pod
            .get("spec")
            .and_then(|s| s.get("securityContext"))
            .cloned()
            .unwrap_or_default();
        for container in workload.containers() {
            let who = workload.who(&container);
            for (what, path) in [
                ("requests", ["requests", "cpu"]),
                ("requests", ["requests", "memory"]),
                ("limits", ["limits", "cpu"]),
                ("limits", ["limits", "memory"]),
            ] {
                if container
                    .get("resources")
                    .and_then(|r| r.get(path[0]))
                    .and_then(|r| r.get(path[1]))
                    .is_none()
                {
                    problems.push(format!("{who}: no resource {what} for {}", path[1]));
                }
            }
            let security = container
                .get("securityContext")
                .cloned()
                .unwrap_or_default();
            let setting = |key: &str| security.get(key).or(pod_security.get(key)).cloned();
            if setting("runAsNonRoot").and_then(|v| v.as_bool()) != Some(true) {
                problems.push(format!("{who}: set runAsNonRoot: true"));
            }
            if setting("runAsUser").and_then(|v| v.as_i64()) == Some(0) {
                problems.push(format!("{who}: runs as root (runAsUser: 0)"));
            }
            if security
                .get("allowPrivilegeEscalation")
                .and_then(Value::as_bool)
                != Some(false)
            {
                problems.push(format!("{who}: set allowPrivilegeEscalation: false"));
            }

            let command: Vec<String> = seq(container.get("command"))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let Some(binary) = command.first().and_then(|c| Binary::from_name(c)) else {
                continue;
            };
            // Ours: the image kustomize sets, the Dockerfile's user, and
            // the checks against the binary.
            let image = text(&container, &["image"]).unwrap_or_default();
            if !objects.images.contains(&image) {
                problems.push(format!(
                    "{who}: image {image} is not one kustomize's `images:` sets ({:?})",
                    objects.images
                ));
            }
            if setting("runAsUser").and_then(|v| v.as_i64()) != Some(dockerfile_user) {
                problems.push(format!(
                    "{who}: runAsUser is not the image's user ({dockerfile_user}, the Dockerfile's USER)"
                ));
            }
            if security
                .get("readOnlyRootFilesystem")
                .and_then(Value::as_bool)
                != Some(true)
            {
                problems.push(format!("{who}: set readOnlyRootFilesystem: true"));
            }
            let mut vars_set = environment(&container);
            for (file, patch) in &objects.patches {
                if name(patch) != workload.name || kind(patch) != workload.kind {
                    continue;
                }
                let patched = seq(patch
                    .get("spec")
                    .and_then(|s| s.get("template"))
                    .and_then(|t| t.get("spec"))
                    .and_then(|s| s.get("containers")));
                for extra in patched
                    .iter()
                    .filter(|c| c.get("name") == container.get("name"))
                {
                    let vars = environment(extra);
                    check_environment(
                        &format!("{who}, patched by {file}"),
                        binary,
                        &vars,
                        &mut problems,
                    );
                    check_otlp(&who, &vars, &services, &workloads, &mut problems);
                }
                vars_set.retain(|var| {
                    !patched
                        .iter()
                        .any(|c| environment(c).iter().any(|v| v.name == var.name))
                });
            }
            check_environment(&who, binary, &vars_set, &mut problems);
            let arguments: Vec<String> = command[1..]
                .iter()
                .cloned()
                .chain(
                    seq(container.get("args"))
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned)),
                )
                .collect();
            let Some(parsed) = Parsed::parse(&who, binary, &vars_set, &arguments, &mut problems)
            else {
                continue;
            };
            let settings = parsed.settings();
            let ports: Vec<u16> = seq(container.get("ports"))
                .iter()
                .filter_map(|p| p.get("containerPort").and_then(as_port))
                .collect();
            check_listen(&who, &settings, &ports, &mut problems);
            check_probes(
                &who,
                &container,
                binary,
                settings.listen.port(),
                &mut problems,
            );
            let termination = workload
                .pod
                .get("spec")
                .and_then(|s| s.get("terminationGracePeriodSeconds"))
                .and_then(Value::as_u64)
                .map(Duration::from_secs);
            check_grace(
                &who,
                &settings,
                termination,
                "terminationGracePeriodSeconds",
                &mut problems,
            );
            if workload.kind == "Deployment"
                && !budgets.iter().any(|budget| {
                    selected(
                        budget
                            .get("spec")
                            .and_then(|s| s.get("selector"))
                            .and_then(|s| s.get("matchLabels")),
                    )
                    .iter()
                    .any(|w| w.name == workload.name)
                })
            {
                problems.push(format!(
                    "{who}: no PodDisruptionBudget selects its pods (a drain could take them all)"
                ));
            }
            if binary == Binary::Server {
                check_database(
                    &who,
                    &container,
                    &objects,
                    &services,
                    &workloads,
                    &mut problems,
                );
            }
            servers.push((workload, parsed));
        }
    }

    // The café's barista endpoints: a headless Service of the baristas, on
    // the port they listen on.
    for (workload, parsed) in &servers {
        let Parsed::Cafe(config) = parsed else {
            continue;
        };
        if config.barista_endpoints.is_empty() {
            problems.push(format!("Deployment {}: no barista endpoint", workload.name));
        }
        for endpoint in &config.barista_endpoints {
            let endpoint = endpoint.to_string();
            let Some((host, port)) = endpoint.rsplit_once(':') else {
                continue;
            };
            let Some((_, service)) = services.iter().find(|(_, s)| name(s) == host) else {
                problems.push(format!(
                    "Deployment {}: barista endpoint {endpoint}: no Service {host}",
                    workload.name
                ));
                continue;
            };
            if service
                .get("spec")
                .and_then(|s| s.get("clusterIP"))
                .and_then(Value::as_str)
                != Some("None")
            {
                problems.push(format!(
                    "Service {host}: the café's DNS discovery needs every barista pod's address: make it headless (clusterIP: None)"
                ));
            }
            let baristas: Vec<&Workload<'_>> =
                selected(service.get("spec").and_then(|s| s.get("selector")))
                    .into_iter()
                    .filter(|w| {
                        servers
                            .iter()
                            .any(|(s, p)| s.name == w.name && matches!(p, Parsed::Barista(_)))
                    })
                    .collect();
            if baristas.is_empty() {
                problems.push(format!("Service {host}: selects no barista pods"));
            }
            let service_port = seq(service.get("spec").and_then(|s| s.get("ports")))
                .into_iter()
                .find(|p| p.get("port").map(value_text).as_deref() == Some(port));
            let Some(service_port) = service_port else {
                problems.push(format!(
                    "Deployment {}: barista endpoint {endpoint}: Service {host} has no port {port}",
                    workload.name
                ));
                continue;
            };
            let target = service_port
                .get("targetPort")
                .map(value_text)
                .unwrap_or_else(|| port.to_owned());
            for barista in baristas {
                let listen = servers
                    .iter()
                    .find(|(w, _)| w.name == barista.name)
                    .map(|(_, p)| p.settings().listen.port());
                if barista.container_ports().get(&target).copied() != listen {
                    problems.push(format!(
                        "Service {host}: port {port} reaches {target} on {}, which listens on {listen:?}",
                        barista.name
                    ));
                }
            }
        }
    }
    problems
}
