//! What every gRPC server of the café does the same way: bind its address,
//! describe itself through reflection, and say why it could not start.
//!
//! The café (`services/cafe`) and the barista backend (`services/barista`)
//! differ in what they serve and how they close; this is what they share.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic_reflection::server::{v1, v1alpha};

use crate::proto::FILE_DESCRIPTOR_SET;

/// Why a server could not start, or stopped badly.
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
    /// Reflection could not read the descriptor set (a build problem).
    #[error("cannot build server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds `address`, with an error that says what to do when it is taken.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartupError::Bind { address, source })
}

/// Server reflection for a server of `service` (e.g. `cafe.v1.Cafe`), in
/// both versions: v1 for current tools, v1alpha for older grpcurl and
/// friends. It advertises only what such a server serves (the descriptor set
/// holds both `Cafe` and `Barista`) plus health and itself, and knows
/// `google.rpc` so tools can decode the `BadRequest` details of errors.
pub fn reflection(
    service: &str,
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    StartupError,
> {
    let builder = |itself: &str| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name(itself)
    };
    let current = builder("grpc.reflection.v1.ServerReflection").build_v1()?;
    let older = builder("grpc.reflection.v1alpha.ServerReflection").build_v1alpha()?;
    Ok((current, older))
}
