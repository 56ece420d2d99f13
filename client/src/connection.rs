//! Dialling the café: one HTTP/2 connection, opened eagerly so that "nobody
//! is there" is reported at once, in one line, before any command starts.
//!
//! A [`Channel`] is a cheap handle to that connection: cloning it (or the
//! [`CafeClient`] around it) gives another sender onto the same connection,
//! which is how `cafe rush` sends many orders at once without opening many
//! sockets.
//!
//! The channel is wrapped once, here, by [`cafe_core::propagation::traced`]:
//! every call is then a client span, child of whatever span the command is
//! in, and carries its `traceparent` to the café, so the café's spans (and
//! the barista's behind it) join the customer's trace.

use std::time::Duration;

use cafe_core::{
    propagation::{self, GrpcClientTrace},
    proto::v1::cafe_client::CafeClient,
};
use tonic::transport::{Channel, Endpoint};

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

/// Adds `http://` to a bare `host:port`, so `--server 127.0.0.1:50051` works.
pub fn normalise(url: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// The endpoint for `url`, with the short connect timeout.
pub fn endpoint(url: &str, connect_timeout: Duration) -> Result<Endpoint, ClientError> {
    Endpoint::from_shared(url.to_owned())
        .map(|endpoint| {
            endpoint
                .connect_timeout(connect_timeout)
                // Buzzer events are tiny; do not let Nagle hold them back.
                .tcp_nodelay(true)
        })
        .map_err(|_| ClientError::BadAddress { url: url.into() })
}

/// Connects to the café at `url` (with or without `http://`).
pub async fn connect(url: &str) -> Result<Connection, ClientError> {
    connect_within(url, CONNECT_TIMEOUT).await
}

/// Connects, giving up after `connect_timeout`.
pub async fn connect_within(
    url: &str,
    connect_timeout: Duration,
) -> Result<Connection, ClientError> {
    let url = normalise(url);
    let endpoint = endpoint(&url, connect_timeout)?;
    // `connect_timeout` bounds the TCP connect; the outer timeout also
    // bounds a name lookup that hangs.
    let channel = match tokio::time::timeout(connect_timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(_)) | Err(_) => return Err(ClientError::NoCafe { url }),
    };
    let channel = propagation::traced(channel);
    Ok(Connection {
        cafe: CafeClient::new(channel.clone()),
        channel,
        url,
    })
}
