//! What every gRPC server of the café does the same way, written once: the
//! flags they share, binding, the HTTP/2 settings, the layers, reflection
//! and health, deadlines, metrics, a graceful shutdown bounded by the grace,
//! and the steps of `main`. It knows no café type: a server hands it its
//! service and that service's descriptor set.
//!
//! The café (`services/cafe`) and the barista backend (`services/barista`)
//! each say only what is their own: which gRPC service they serve, how they
//! report health, and their closing steps (their `startup.rs` implements
//! [`Serve`]); and their own flags beside the shared [`ServerFlags`].
//!
//! # Layout
//! - [`flags`]: [`ServerFlags`], the flags every server has, flattened into
//!   each server's clap `Config` under its own environment prefix.
//! - [`server`]: [`Server`], one gRPC service as every server serves it:
//!   bind, layers, health, reflection, and the closing order bounded by
//!   `--shutdown-grace`.
//! - [`transport`]: the connections, from `accept` to GOAWAY, their limits
//!   and HTTP/2 settings, with [`handshake`] (the preface deadline) and
//!   [`calls`] (each call counted, timed and traced by one observer).
//! - [`tls`]: TLS and mutual TLS on the accept loop, and the certificate
//!   swapped on SIGHUP without dropping a connection.
//! - [`deadline`]: the caller's deadline, answered `DEADLINE_EXCEEDED`.
//! - [`retry_hint`]: while closing, `UNAVAILABLE` says when to come back.
//! - [`metrics`]: what an operator watches a server by, for Prometheus.
//! - [`shutdown`]: the signals (SIGINT, SIGTERM) that close a server.
//! - [`supervision`]: the tasks a server cannot work without; the first
//!   to die closes it, and it exits non-zero to be restarted.
//! - [`application`]: [`Application`] (build, learn the port, serve),
//!   [`run_main`], the body of every server binary's `main`, and
//!   [`exit_code`], how it ends.

pub mod application;
pub mod calls;
pub mod deadline;
pub mod flags;
pub mod handshake;
pub mod metrics;
pub mod retry_hint;
pub mod server;
pub mod shutdown;
pub mod supervision;
pub mod tls;
pub mod transport;

use std::net::SocketAddr;

pub use application::{Application, Serve, exit_code, run_main};
pub use flags::{ServerEnv, ServerFlags};
pub use server::{LIVENESS, OnOpen, Server, bind, not_serving};
pub use supervision::{Critical, Fault};
pub use transport::Limits;

/// Why a server could not start, or stopped badly; or why a TLS reload
/// was refused (the server then goes on with the certificate it had).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The address could not be bound.
    #[error(
        "cannot listen on {address}: {source} (is another server using it? choose another with --listen)"
    )]
    Bind {
        /// `--listen`.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error(
        "cannot listen for metrics on {address}: {source} (is another server using it? choose another with --metrics-listen)"
    )]
    BindMetrics {
        /// `--metrics-listen`.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The tokio runtime could not be built (out of threads or memory).
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// Reflection could not read the descriptor set (a build problem).
    #[error("cannot build server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A TLS file could not be read (at start, or on a reload).
    #[error("cannot read the {what} {}: {source}", path.display())]
    TlsRead {
        /// Which flag's file: "certificate (--tls-cert)".
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A TLS file was read but holds no PEM item of the kind expected.
    #[error("the {what} {} holds no {expected} in PEM: {reason}", path.display())]
    TlsPem {
        /// Which flag's file.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What it should hold: "CERTIFICATE", "PRIVATE KEY".
        expected: &'static str,
        /// What the PEM reader said.
        reason: String,
    },
    /// rustls refused the files together: a key that does not match the
    /// certificate, a client CA that is not a CA.
    #[error("cannot use {} for TLS: {reason}", path.display())]
    TlsRefused {
        /// The file the problem is about.
        path: std::path::PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// Something the service itself needs could not be opened (the café's
    /// order store); the error says what and why.
    #[error(transparent)]
    Service(Box<dyn std::error::Error + Send + Sync>),
    /// A part the server cannot work without stopped while it served, and
    /// it closed (see [`supervision`]).
    #[error(
        "stopped because {0}; start it again (a supervisor such as systemd or Kubernetes does)"
    )]
    Fault(#[from] Fault),
}

impl StartupError {
    /// The error as one line for the person who started the server: its
    /// message, then each underlying cause the line does not already say.
    /// Most messages quote their cause (`cannot listen on …: Address in
    /// use`), so the whole chain, as `anyhow` prints an error returned from
    /// `main` (`Caused by:` …), would say the same cause two or three times.
    pub fn one_line(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            let said = error.to_string();
            if !line.contains(&said) {
                line.push_str(": ");
                line.push_str(&said);
            }
            cause = error.source();
        }
        line.replace('\n', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_startup_error_says_each_cause_once_on_one_line() {
        let in_use = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        // The message quotes its cause: not said again.
        let bind = StartupError::Bind {
            address: "127.0.0.1:50051".parse().unwrap(),
            source: in_use(),
        };
        assert_eq!(bind.one_line(), bind.to_string());
        assert_eq!(bind.one_line().matches(&in_use().to_string()).count(), 1);
        // The message does not: the cause follows it.
        let runtime = StartupError::Runtime(std::io::Error::other("out of threads"));
        assert_eq!(
            runtime.one_line(),
            "cannot start the async runtime: out of threads"
        );
    }
}
