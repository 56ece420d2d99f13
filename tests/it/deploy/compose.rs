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
//!
//! The files are read into [`services`]; [`checks`] says what is wrong
//! with them, [`proxy`] with the Envoy service and [`tls`] with the
//! certificates; [`drift`] breaks the files in the ways people do.

mod checks;
mod drift;
mod proxy;
mod services;
mod tls;

use std::collections::BTreeMap;

use checks::problems;

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
                include_str!("../../../docker-compose.yml"),
            ),
            (
                "docker-compose.tls.yml",
                include_str!("../../../docker-compose.tls.yml"),
            ),
            ("Dockerfile", include_str!("../../../Dockerfile")),
            (
                "deploy/envoy/envoy.yaml",
                include_str!("../../../deploy/envoy/envoy.yaml"),
            ),
            (
                "deploy/envoy/envoy.tls.yaml",
                include_str!("../../../deploy/envoy/envoy.tls.yaml"),
            ),
            (
                "docker/make-certs.sh",
                include_str!("../../../docker/make-certs.sh"),
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
