//! Certificates made at run time for the TLS tests: a private CA
//! ([`TestPki`]) that signs server and client certificates (rcgen), written
//! as PEM files in a directory of the test's own, where the servers' flags
//! (`--tls-cert`, `--barista-ca`, ...) can point.
//!
//! Nothing is checked in: every run has a fresh CA and fresh keys, so no
//! test depends on a certificate that expires.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, ServerName},
    },
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A private CA and the directory its PEM files are written to.
pub struct TestPki {
    dir: TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    /// The CA's certificate, in PEM, as `--ca` and `--tls-client-ca` take it.
    pub ca_pem: PathBuf,
}

/// A certificate the CA issued, with its key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, in PEM (`--tls-cert`).
    pub cert: PathBuf,
    /// Its private key, in PEM (`--tls-key`).
    pub key: PathBuf,
    /// The certificate itself, to compare with what a server presents.
    pub der: CertificateDer<'static>,
}

impl TestPki {
    /// A new CA, named `name`, in a fresh directory.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the certificates");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).expect("a self-signed CA");
        let ca_pem = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, ca.pem()).expect("write the CA");
        TestPki {
            dir,
            ca,
            ca_key,
            ca_pem,
        }
    }

    /// The directory the files are in (to write a broken one beside them).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A certificate for `hosts` (DNS names or IP addresses), usable by a
    /// server and as a client certificate, written as `<file>.pem` and
    /// `<file>-key.pem` (over what was there: a renewal).
    pub fn issue(&self, file: &str, hosts: &[&str]) -> Issued {
        let key = KeyPair::generate().expect("a key");
        let names: Vec<String> = hosts.iter().map(|host| (*host).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("a certificate signed by the CA");
        let issued = Issued {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}-key.pem")),
            der: cert.der().clone(),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write the key");
        issued
    }

    /// tonic's client TLS trusting this CA, checking the name `domain`.
    pub fn client_tls(&self, domain: &str) -> ClientTlsConfig {
        let pem = std::fs::read(&self.ca_pem).expect("read the CA");
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pem))
            .domain_name(domain)
    }

    /// The same, presenting `identity` as a client certificate.
    pub fn client_tls_as(&self, domain: &str, identity: &Issued) -> ClientTlsConfig {
        let cert = std::fs::read(&identity.cert).expect("read the certificate");
        let key = std::fs::read(&identity.key).expect("read the key");
        self.client_tls(domain)
            .identity(Identity::from_pem(cert, key))
    }

    /// A TLS channel to `addr`, trusting this CA and checking `domain`.
    pub async fn channel(&self, addr: SocketAddr, domain: &str) -> Channel {
        Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(self.client_tls(domain))
            .expect("a TLS config")
            .connect()
            .await
            .expect("connect over TLS")
    }

    /// The certificate a server at `addr` presents to a new connection now,
    /// read by a bare rustls handshake (offering `h2`, as gRPC clients do).
    pub async fn served_certificate(
        &self,
        addr: SocketAddr,
        domain: &str,
    ) -> CertificateDer<'static> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("the CA as a root");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from(domain.to_owned()).expect("a server name");
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("a TLS handshake");
        let (_, session) = tls.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("the server's certificate")
            .clone()
            .into_owned()
    }
}
