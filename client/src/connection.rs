//! Dialling the café: one HTTP/2 connection, opened eagerly so that "nobody
//! is there" is reported at once, in one line, before any command starts.
//!
//! A [`Channel`] is a cheap handle to that connection: cloning it (or the
//! [`CafeClient`] around it) gives another sender onto the same connection,
//! which is how `cafe rush` sends many orders at once without opening many
//! sockets.
//!
//! The channel is wrapped once, here, by [`grpc_telemetry::propagation::traced`]:
//! every call is then a client span, child of whatever span the command is
//! in, and carries its `traceparent` to the café, so the café's spans (and
//! the barista's behind it) join the customer's trace.
//!
//! # TLS
//!
//! An `https://` address is dialled over TLS (rustls, through tonic's
//! `tls-ring`), trusting only the CA certificate given with `--ca`: a café
//! with a private CA's certificate is the usual case, and the CLI carries no
//! list of public roots. The ways TLS goes wrong are each worded as what to
//! do ([`tls_failure`]): a certificate for another name, one from a CA that
//! `--ca` does not hold, a café that does not speak TLS at all; and the
//! other way round, a plaintext client on a TLS port is told so by the
//! café itself (`grpc_telemetry::outcome::PLAINTEXT_ON_TLS`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use cafe_domain::proto::v1::cafe_client::CafeClient;
use grpc_telemetry::propagation::{self, GrpcClientTrace};
use rustls::CertificateError;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::ClientError;

/// How long to try to reach the café before saying nobody is there.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The café's gRPC client on a traced channel.
pub type Cafe = CafeClient<GrpcClientTrace<Channel>>;

/// A connection to one café.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The address as the user gave it (normalised), for messages.
    pub url: String,
    /// The café's gRPC client on the connection.
    pub cafe: Cafe,
    /// The connection itself (traced), for other services (health).
    pub channel: GrpcClientTrace<Channel>,
}

/// Where the café is and how to trust it: `--server` and `--ca`.
#[derive(Debug, Clone, Default)]
pub struct Dial {
    /// `--server`, as given.
    pub server: String,
    /// `--ca`: the CA certificate (PEM) that signed the café's.
    pub ca: Option<PathBuf>,
    /// `--client-cert` and `--client-key`: the certificate to present to a
    /// server that asks for one (mutual TLS, `--tls-client-ca`).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl Dial {
    /// A plaintext café at `server` (`host:port` or `http://host:port`).
    pub fn plaintext(server: &str) -> Self {
        Dial {
            server: server.to_owned(),
            ca: None,
            identity: None,
        }
    }

    /// The URL to dial: a bare `host:port` gets `https://` with `--ca` and
    /// `http://` without.
    pub fn url(&self) -> String {
        normalise(&self.server, self.ca.is_some())
    }
}

/// Adds a scheme to a bare `host:port`, so `--server 127.0.0.1:50051`
/// works: `https://` if a CA was given for TLS, else `http://`.
pub fn normalise(url: &str, tls: bool) -> String {
    match (url.contains("://"), tls) {
        (true, _) => url.to_owned(),
        (false, false) => format!("http://{url}"),
        (false, true) => format!("https://{url}"),
    }
}

/// The endpoint for the café `dial` names (its URL normalised), with the
/// short connect timeout; over TLS for `https://`, trusting `dial.ca`.
pub fn endpoint(dial: &Dial, connect_timeout: Duration) -> Result<Endpoint, ClientError> {
    let url = &dial.url();
    let ca = dial.ca.as_deref();
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map(|endpoint| {
            endpoint
                .connect_timeout(connect_timeout)
                // Buzzer events are tiny; do not let Nagle hold them back.
                .tcp_nodelay(true)
        })
        .map_err(|_| ClientError::BadAddress { url: url.into() })?;
    let https = url.starts_with("https://");
    match (https, ca) {
        (false, None) => Ok(endpoint),
        (false, Some(_)) => Err(ClientError::CaWithoutTls { url: url.into() }),
        (true, ca) => {
            // Without --ca nothing is trusted: the handshake then fails
            // with "not signed by a CA you trust", which says to give one.
            let mut tls = ClientTlsConfig::new();
            if let Some(path) = ca {
                let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
                    path: path.to_owned(),
                    detail: source.to_string(),
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some((cert, key)) = &dial.identity {
                let read = |path: &Path| {
                    std::fs::read(path).map_err(|source| ClientError::CaFile {
                        path: path.to_owned(),
                        detail: source.to_string(),
                    })
                };
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint
                .tls_config(tls)
                .map_err(|error| ClientError::CaFile {
                    path: ca.unwrap_or(Path::new("")).to_owned(),
                    detail: error.to_string(),
                })
        }
    }
}

/// Connects to the plaintext café at `url` (with or without `http://`).
pub async fn connect(url: &str) -> Result<Connection, ClientError> {
    connect_to(&Dial::plaintext(url)).await
}

/// Connects to the café `dial` names, over TLS if it says so.
pub async fn connect_to(dial: &Dial) -> Result<Connection, ClientError> {
    connect_within(dial, CONNECT_TIMEOUT).await
}

/// Connects, giving up after `connect_timeout`.
pub async fn connect_within(
    dial: &Dial,
    connect_timeout: Duration,
) -> Result<Connection, ClientError> {
    let url = dial.url();
    let endpoint = endpoint(dial, connect_timeout)?;
    // `connect_timeout` bounds the TCP connect; the outer timeout also
    // bounds a name lookup that hangs.
    let channel = match tokio::time::timeout(connect_timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(error)) => return Err(connect_failure(&url, &error)),
        Err(_) => return Err(ClientError::NoCafe { url }),
    };
    let channel = propagation::traced(channel);
    Ok(Connection {
        cafe: CafeClient::new(channel.clone()),
        channel,
        url,
    })
}

/// Why connecting to `url` failed, in words: a TLS failure says which, and
/// anything else is "no café there".
pub fn connect_failure(url: &str, error: &(dyn std::error::Error + 'static)) -> ClientError {
    match tls_failure(error) {
        Some(reason) => ClientError::Tls {
            url: url.to_owned(),
            reason,
        },
        None => ClientError::NoCafe {
            url: url.to_owned(),
        },
    }
}

/// The TLS failure somewhere in `error`'s chain of causes, worded as what
/// to do about it; `None` if it was not TLS that failed.
///
/// rustls' error reaches us wrapped in an `io::Error` (tokio-rustls' way),
/// and `io::Error::source` skips what it wraps, so each link that is an
/// `io::Error` is opened by hand.
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut link = Some(error);
    while let Some(error) = link {
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(tls) = error.downcast_ref::<rustls::Error>().or(wrapped) {
            return Some(explain(tls));
        }
        link = error.source();
    }
    None
}

/// One rustls error as what to do.
fn explain(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "its certificate is not for this host name ({error}): use the name on its certificate in --server, or give the café a certificate for this name"
        ),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "its certificate is not signed by a CA you trust: give its CA certificate with --ca"
                .to_owned()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("its certificate has expired ({error}): renew it, then SIGHUP the café"),
        rustls::Error::InvalidMessage(_) => {
            "it did not answer in TLS: is it a plaintext café? use http:// and no --ca".to_owned()
        }
        rustls::Error::AlertReceived(_) => format!(
            "it refused the TLS handshake ({error}): does it ask for a client certificate (--tls-client-ca)?"
        ),
        other => format!("TLS failed: {other}"),
    }
}
