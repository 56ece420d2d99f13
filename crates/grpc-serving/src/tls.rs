//! TLS on the servers' own accept loop, and a certificate that can be
//! replaced while the server runs (SIGHUP).
//!
//! With `--tls-cert` and `--tls-key`, every accepted connection is a TLS
//! connection (rustls, with the ring provider) that offers HTTP/2 by ALPN
//! (`h2`), the only protocol gRPC speaks. With `--tls-client-ca` as well,
//! the server asks each client for a certificate and refuses one that has
//! none signed by that CA: mutual TLS, how a barista backend knows the
//! caller is one of the cafés.
//!
//! # Why a swap and not a restart
//!
//! Certificates expire (Let's Encrypt's after 90 days, an internal CA's
//! often sooner), and restarting a server to pick up the new one would
//! drop every open buzzer. So the server's rustls `ServerConfig` sits in
//! an [`ArcSwap`]: [`ServerTls::reload`] reads the files again and swaps
//! the pointer, and each new connection's handshake takes whichever config
//! is current at that moment ([`ServerTls::acceptor`]). A connection
//! already open keeps the config it was made with (it holds its own
//! `Arc`): its TLS session is not renegotiated, its calls go on. Reading
//! the config is one atomic load, with no lock on the accept path.
//!
//! A new certificate that cannot be read, or whose key does not match it,
//! is refused and the old one stays served: a mistake in a renewal must
//! not take the server down. [`reload_on_sighup`] logs either outcome.
//!
//! The metrics endpoint (`--metrics-listen`) stays plain HTTP: Prometheus
//! scrapes it from inside the deployment's own network.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio_rustls::TlsAcceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tracing::{error, info};

use super::StartupError;

/// The ALPN protocol id of HTTP/2 over TLS: gRPC speaks nothing else.
const ALPN_H2: &[u8] = b"h2";

/// The files a server's TLS is made of (`--tls-cert`, `--tls-key`,
/// `--tls-client-ca`), read again on every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first, in PEM.
    pub cert: PathBuf,
    /// Its private key, in PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// With it, clients must present a certificate signed by one of these
    /// CAs (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// A server's TLS: the config each new connection's handshake uses, which
/// [`ServerTls::reload`] replaces. Shared by the accept loop and whatever
/// reloads it (`Arc`).
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
}

impl ServerTls {
    /// Reads the files and builds the config; an error names the file.
    pub fn load(files: TlsFiles) -> Result<Self, StartupError> {
        let config = server_config(&files)?;
        Ok(ServerTls {
            files,
            current: ArcSwap::from_pointee(config),
        })
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again and, if they make a valid config, serves it
    /// to every connection from now on. On an error the config in use is
    /// kept, and the error says why the new one was refused.
    pub fn reload(&self) -> Result<(), StartupError> {
        let config = server_config(&self.files)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// The acceptor for one new connection, with the config current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }
}

/// Reloads `tls` on every SIGHUP until the process ends, logging the
/// outcome: what operators (and `certbot`'s deploy hooks) send after
/// renewing a certificate. Spawned by `run_main` for a server with TLS.
#[cfg(unix)]
pub async fn reload_on_sighup(tls: Arc<ServerTls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            error!(%error, "cannot listen for SIGHUP: the TLS certificate will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let cert = tls.files().cert.display();
        match tls.reload() {
            Ok(()) => info!(%cert, "SIGHUP: TLS certificate reloaded; new connections get it"),
            Err(error) => error!(
                %error,
                "SIGHUP: TLS certificate not reloaded; still serving the previous one"
            ),
        }
    }
}

/// A server's TLS as its clients see it: tonic's client config trusting
/// the CA in `ca` (PEM) and, for mutual TLS, presenting `identity` (a
/// certificate and its key, PEM). The café builds it for its baristas
/// (`--barista-ca`, `--barista-tls-cert`, `--barista-tls-key`). The files
/// are read and checked here, so that a mistake stops the server at start
/// with the file's name, not every connection later.
pub fn client_tls(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientTlsConfig, StartupError> {
    read_certs(ca, "CA certificate (--barista-ca)")?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_file(
        ca,
        "CA certificate (--barista-ca)",
    )?));
    if let Some((cert, key)) = identity {
        read_certs(cert, "client certificate (--barista-tls-cert)")?;
        read_key(key, "client key (--barista-tls-key)")?;
        tls = tls.identity(Identity::from_pem(
            read_file(cert, "client certificate (--barista-tls-cert)")?,
            read_file(key, "client key (--barista-tls-key)")?,
        ));
    }
    // tonic builds its rustls config when the config is set on an
    // endpoint: do it once now, so that what rustls refuses (a key that
    // does not match) is said at start.
    Endpoint::from_static("https://localhost")
        .tls_config(tls.clone())
        .map_err(|error| StartupError::TlsRefused {
            path: identity.map_or(ca, |(cert, _)| cert).to_owned(),
            reason: std::error::Error::source(&error)
                .map_or_else(|| error.to_string(), ToString::to_string),
        })?;
    Ok(tls)
}

/// The ring provider, named rather than left to rustls' process default:
/// the build has no other, and saying so makes the choice visible.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a server config from the files.
fn server_config(files: &TlsFiles) -> Result<ServerConfig, StartupError> {
    let certs = read_certs(&files.cert, "certificate (--tls-cert)")?;
    let key = read_key(&files.key, "private key (--tls-key)")?;
    let rustls_error = |path: &Path| {
        let path = path.to_owned();
        move |error: rustls::Error| StartupError::TlsRefused {
            path,
            reason: error.to_string(),
        }
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error(&files.cert))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path, "client CA (--tls-client-ca)")? {
                roots.add(cert).map_err(rustls_error(path))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .map_err(|error| StartupError::TlsRefused {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(rustls_error(&files.key))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Reads a file, naming it and its flag on an error.
pub fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, StartupError> {
    std::fs::read(path).map_err(|source| StartupError::TlsRead {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate in a PEM file (a chain, or a CA bundle).
fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, StartupError> {
    let pem = read_file(path, what)?;
    let bad = |reason: String| StartupError::TlsPem {
        what,
        path: path.to_owned(),
        expected: "CERTIFICATE",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(error.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file.
fn read_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, StartupError> {
    let pem = read_file(path, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| StartupError::TlsPem {
        what,
        path: path.to_owned(),
        expected: "PRIVATE KEY",
        reason: error.to_string(),
    })
}
