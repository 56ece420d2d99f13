//! The manifests under `deploy/kubernetes/` against the binaries. CI renders
//! them with kustomize and validates every object against the Kubernetes
//! API's schema (`.ci/run`); this test reads the same files, each
//! kustomization's resources, patches and generated Secrets, and checks
//! what no schema knows:
//! - every variable a container of ours sets is one its binary reads, with
//!   a value its flag accepts, and the database URL comes from a Secret;
//! - every server listens on 0.0.0.0 on exactly its `containerPorts`, its
//!   readiness probe is gRPC on its own port for its own service, its
//!   liveness probe gRPC for [`grpc_serving::LIVENESS`];
//! - the shutdown grace covers the longest drink and
//!   `terminationGracePeriodSeconds` the grace plus the last span flush;
//! - every Service selects a workload and every `targetPort` is one of its
//!   container ports; the café's barista endpoint is a headless Service of
//!   the baristas on their port; the database URL in the generated Secret
//!   names the PostgreSQL Service, port, user and database; the OTLP
//!   endpoint is Jaeger's OTLP/gRPC port;
//! - every container has resource requests and limits, runs as a non-root
//!   user (ours as the Dockerfile's), and every Deployment of ours has a
//!   PodDisruptionBudget.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_norway::{Mapping, Value};

use super::binaries::{
    Binary, Parsed, Var, check_environment, check_grace, check_listen, postgres_target, root,
};

const DOCKERFILE: &str = include_str!("../../Dockerfile");

/// OTLP over gRPC.
const OTLP_GRPC_PORT: u16 = 4317;

#[test]
fn the_manifests_match_the_binaries() {
    let tree = Tree::load();
    assert!(
        tree.files.len() >= 8,
        "read only {:?} under deploy/kubernetes",
        tree.files.keys()
    );
    let problems = problems(&tree);
    assert!(
        problems.is_empty(),
        "deploy/kubernetes and the binaries disagree:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn each_kind_of_manifest_drift_is_caught() {
    const CAFE: &str = "base/cafe.yaml";
    const BARISTA: &str = "base/barista.yaml";
    const POSTGRES: &str = "components/postgres/kustomization.yaml";
    const JAEGER: &str = "components/jaeger/export-traces.yaml";
    // (what goes wrong, file, text in it, what it becomes)
    let breakages = [
        (
            "a variable typo",
            BARISTA,
            "name: BARISTA_BARISTAS",
            "name: BARISTA_BARISTA",
        ),
        (
            "a value the flag refuses",
            CAFE,
            "name: CAFE_TIME_SCALE\n              value: \"0.05\"",
            "name: CAFE_TIME_SCALE\n              value: \"fast\"",
        ),
        (
            "a barista endpoint naming no Service",
            CAFE,
            "value: \"barista-headless:50061\"",
            "value: \"barista:50061\"",
        ),
        (
            "a barista endpoint on the wrong port",
            CAFE,
            "value: \"barista-headless:50061\"",
            "value: \"barista-headless:50062\"",
        ),
        (
            "baristas behind one cluster IP",
            BARISTA,
            "  clusterIP: None\n",
            "",
        ),
        (
            "a readiness probe on the wrong port",
            CAFE,
            "port: 50051\n              service: cafe.v1.Cafe",
            "port: 50052\n              service: cafe.v1.Cafe",
        ),
        (
            "a readiness probe for a service the server does not report",
            BARISTA,
            "service: cafe.v1.Barista",
            "service: cafe.v1.Cafe",
        ),
        (
            "a liveness probe that follows readiness",
            CAFE,
            "service: liveness",
            "service: cafe.v1.Cafe",
        ),
        (
            "a liveness probe that is not gRPC",
            BARISTA,
            "livenessProbe:\n            grpc:\n              port: 50061\n              service: liveness",
            "livenessProbe:\n            tcpSocket:\n              port: 50061",
        ),
        (
            "a termination grace shorter than the shutdown",
            CAFE,
            "terminationGracePeriodSeconds: 20",
            "terminationGracePeriodSeconds: 16",
        ),
        (
            "a shutdown grace shorter than the longest drink",
            BARISTA,
            "value: \"15s\"",
            "value: \"5s\"",
        ),
        (
            "a container port nothing listens on",
            CAFE,
            "containerPort: 9051",
            "containerPort: 9052",
        ),
        (
            "a server on the pod's loopback",
            BARISTA,
            "value: \"0.0.0.0:50061\"",
            "value: \"127.0.0.1:50061\"",
        ),
        (
            "a Service targeting a port the pod has not",
            CAFE,
            "targetPort: grpc\n      # HTTP/2",
            "targetPort: grpcs\n      # HTTP/2",
        ),
        (
            "a Service selecting no pod",
            BARISTA,
            "  clusterIP: None\n  selector:\n    app.kubernetes.io/name: barista",
            "  clusterIP: None\n  selector:\n    app.kubernetes.io/name: baristas",
        ),
        (
            "a PodDisruptionBudget selecting no pod",
            CAFE,
            "  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: cafe",
            "  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: cafes",
        ),
        (
            "the database password in the manifest",
            CAFE,
            "- name: DATABASE_URL\n              valueFrom:\n                secretKeyRef:\n                  name: cafe-database\n                  key: url",
            "- name: DATABASE_URL\n              value: postgres://cafe:pw@postgres:5432/cafe",
        ),
        (
            "a database URL on the wrong port",
            POSTGRES,
            "@postgres:5432/cafe",
            "@postgres:5433/cafe",
        ),
        (
            "a database URL with another user",
            POSTGRES,
            "url=postgres://cafe:",
            "url=postgres://postgres:",
        ),
        ("a root user", CAFE, "runAsUser: 10001", "runAsUser: 0"),
        (
            "a writable root filesystem",
            BARISTA,
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        ),
        (
            "a container without limits",
            BARISTA,
            "            limits:\n              cpu: 500m\n              memory: 128Mi\n",
            "",
        ),
        (
            "the OTLP/HTTP port for our gRPC exporter",
            JAEGER,
            "value: \"http://jaeger:4317\"",
            "value: \"http://jaeger:4318\"",
        ),
        (
            "an image kustomize does not set",
            BARISTA,
            "image: rust-grpc-cafe",
            "image: cafe",
        ),
    ];
    let tree = Tree::load();
    for (what, file, from, to) in breakages {
        let text = &tree.files[file];
        assert!(
            text.contains(from),
            "{what}: {from:?} is no longer in {file}; update this test"
        );
        let mut broken = tree.clone();
        broken
            .files
            .insert(file.to_owned(), text.replacen(from, to, 1));
        let problems = problems(&broken);
        assert!(
            !problems.is_empty(),
            "{what} ({file}: {from} -> {to}) went unnoticed"
        );
        eprintln!("{what}: {}", problems.join("; "));
    }
}

/// The text of every file under `deploy/kubernetes/`, by path relative to
/// it, so that a test can break one in memory.
#[derive(Debug, Clone)]
struct Tree {
    files: BTreeMap<String, String>,
}

impl Tree {
    fn load() -> Tree {
        let base = root().join("deploy/kubernetes");
        let mut files = BTreeMap::new();
        let mut dirs = vec![base.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    // CI's throwaway combinations.
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else if name.ends_with(".yaml") {
                    files.insert(
                        relative(&base, &path),
                        std::fs::read_to_string(&path).unwrap(),
                    );
                }
            }
        }
        Tree { files }
    }

    fn documents(&self, file: &str, problems: &mut Vec<String>) -> Vec<Value> {
        let Some(text) = self.files.get(file) else {
            problems.push(format!("{file}: no such file"));
            return Vec::new();
        };
        // One object per `---`-separated document.
        let mut documents = Vec::new();
        let mut document = String::new();
        for line in text.lines().chain(["---"]) {
            if line.trim_end() != "---" {
                document.push_str(line);
                document.push('\n');
                continue;
            }
            match serde_norway::from_str::<Value>(&document) {
                Ok(Value::Null) => {}
                Ok(value) => documents.push(value),
                Err(error) => problems.push(format!("{file}: not YAML: {error}")),
            }
            document.clear();
        }
        documents
    }
}

fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// Joins `dir/path`, resolving `..`, as a key of [`Tree::files`].
fn join(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Everything the kustomizations bring together.
#[derive(Debug, Default)]
struct Objects {
    /// (file, object) for every resource.
    resources: Vec<(String, Value)>,
    /// (file, object) for every strategic-merge patch.
    patches: Vec<(String, Value)>,
    /// Generated Secrets: name -> key -> value.
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The image names kustomize sets (`images:`).
    images: Vec<String>,
}

fn collect(tree: &Tree, problems: &mut Vec<String>) -> Objects {
    let mut objects = Objects::default();
    for (file, _) in tree
        .files
        .iter()
        .filter(|(f, _)| f.ends_with("kustomization.yaml"))
    {
        let dir = file
            .trim_end_matches("kustomization.yaml")
            .trim_end_matches('/');
        for kustomization in tree.documents(file, problems) {
            for resource in seq(kustomization.get("resources")) {
                let Some(path) = resource.as_str() else {
                    continue;
                };
                let target = join(dir, path);
                if path.ends_with(".yaml") {
                    for object in tree.documents(&target, problems) {
                        objects.resources.push((target.clone(), object));
                    }
                } else if !tree
                    .files
                    .contains_key(&format!("{target}/kustomization.yaml"))
                {
                    problems.push(format!("{file}: resource {path} is no kustomization"));
                }
            }
            for component in seq(kustomization.get("components")) {
                let target = join(dir, component.as_str().unwrap_or_default());
                if !tree
                    .files
                    .contains_key(&format!("{target}/kustomization.yaml"))
                {
                    problems.push(format!("{file}: component {target} is no kustomization"));
                }
            }
            for patch in seq(kustomization.get("patches")) {
                let Some(path) = patch.get("path").and_then(Value::as_str) else {
                    continue;
                };
                let target = join(dir, path);
                for object in tree.documents(&target, problems) {
                    objects.patches.push((target.clone(), object));
                }
            }
            for generator in seq(kustomization.get("secretGenerator")) {
                let name = text(&generator, &["name"]).unwrap_or_default();
                let entries = objects.secrets.entry(name).or_default();
                for literal in seq(generator.get("literals")) {
                    if let Some((key, value)) = literal.as_str().and_then(|l| l.split_once('=')) {
                        entries.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
            for image in seq(kustomization.get("images")) {
                objects.images.extend(text(&image, &["name"]));
            }
        }
    }
    objects
}

/// A workload: a Deployment or StatefulSet, with its pod template.
struct Workload<'a> {
    kind: String,
    name: String,
    file: &'a str,
    spec: &'a Value,
    pod: &'a Value,
    labels: Mapping,
}

impl Workload<'_> {
    fn containers(&self) -> Vec<Value> {
        seq(self.pod.get("spec").and_then(|s| s.get("containers")))
    }

    fn who(&self, container: &Value) -> String {
        format!(
            "{} {}/{} ({})",
            self.kind,
            self.name,
            text(container, &["name"]).unwrap_or_default(),
            self.file
        )
    }

    fn container_ports(&self) -> BTreeMap<String, u16> {
        let mut ports = BTreeMap::new();
        for container in self.containers() {
            for port in seq(container.get("ports")) {
                let number = port
                    .get("containerPort")
                    .and_then(as_port)
                    .unwrap_or_default();
                ports.insert(number.to_string(), number);
                if let Some(name) = text(&port, &["name"]) {
                    ports.insert(name, number);
                }
            }
        }
        ports
    }
}

fn problems(tree: &Tree) -> Vec<String> {
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

/// Readiness: gRPC health on the server's own port, for its own service
/// (NOT_SERVING while it cannot take work). Liveness: gRPC health for
/// `liveness`, which only a server that no longer answers fails.
fn check_probes(
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
fn check_database(
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
fn check_otlp(
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

fn environment(container: &Value) -> Vec<Var> {
    seq(container.get("env"))
        .iter()
        .map(|var| Var {
            name: text(var, &["name"]).unwrap_or_default(),
            value: var.get("value").map(value_text),
        })
        .collect()
}

fn kind(object: &Value) -> String {
    text(object, &["kind"]).unwrap_or_default()
}

fn name(object: &Value) -> String {
    text(object, &["metadata", "name"]).unwrap_or_default()
}

fn seq(value: Option<&Value>) -> Vec<Value> {
    value
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default()
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    let mut value = value;
    for key in path {
        value = value.get(*key)?;
    }
    value.as_str().map(str::to_owned)
}

/// A scalar as text: `grpc`, `50051`, `true`.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn as_port(value: &Value) -> Option<u16> {
    value.as_u64().and_then(|port| u16::try_from(port).ok())
}
