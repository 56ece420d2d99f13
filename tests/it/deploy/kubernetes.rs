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
//!
//! The files are read into objects in [`manifests`]; [`checks`] says what
//! is wrong with them as a whole, [`containers`] with one container.

mod checks;
mod containers;
mod manifests;

use checks::problems;
use manifests::Tree;

const DOCKERFILE: &str = include_str!("../../../Dockerfile");

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
