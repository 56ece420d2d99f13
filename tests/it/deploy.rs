//! The deployment files and the binaries, kept in step.
//!
//! Nothing on a developer's machine or in CI starts Docker, Envoy or a
//! Kubernetes cluster, so nothing would notice a compose file that sets
//! `CAFE_BARISTA` instead of `CAFE_BARISTA_ENDPOINTS` (the café would just
//! run with its default), a probe that asks the wrong port (the pods would
//! never be ready) or an Envoy cluster on a port no café listens on. These
//! tests read the files and check them against the same clap definitions
//! that `--help` prints, and against each other:
//!
//! - [`compose`]: `docker-compose.yml` (and the Dockerfile), alone and with
//!   the TLS override `docker-compose.tls.yml` merged on top;
//! - [`envoy`]: `deploy/envoy/envoy.yaml` and its TLS twin
//!   `envoy.tls.yaml`, on their own and against the compose services they
//!   front;
//! - [`kubernetes`]: the manifests under `deploy/kubernetes/`.
//!
//! Each has a second test that breaks its file in the ways people do (a
//! typo, a wrong port) and checks that each one is caught: a check that
//! cannot fail would be worse than none.
//!
//! # Layout
//! - [`binaries`]: our three binaries' clap definitions, read as a deployment
//!   file needs them: which variables each reads, whether a value is one its
//!   flag accepts, a server's effective configuration, and the checks every
//!   way of running a server shares (where it listens, its grace periods).

mod binaries;
mod compose;
mod envoy;
mod kubernetes;
