//! The transport: every client connection from `accept` to its close, run
//! here rather than inside tonic's `Server`, so that the limits that keep
//! one client from starving the others and the order of closing are ours
//! to choose and to read.
//!
//! tonic's own server runs each connection in a task of its own that
//! outlives the server's future: stopping it after the grace left those
//! connections running until the process exited and cut them mid-call.
//! Here one task owns every connection (a `JoinSet`), so closing is one
//! sequence:
//!
//! 1. [`Transport::close`] stops accepting: the listener is dropped, new
//!    connections are refused (a client's `UNAVAILABLE`, "connection
//!    refused", which it retries elsewhere);
//! 2. every connection is sent GOAWAY (hyper's graceful shutdown: a first
//!    GOAWAY that refuses nothing, a PING, then the last stream it took)
//!    once its client has sent no new call for a second (`QUIET`; for a
//!    client that keeps sending, after `QUIET_AT_MOST` or by the time the
//!    server gives): calls already sent are answered, no new ones are
//!    taken; from the start of closing until the client has read GOAWAY,
//!    its new calls wait for their answers (`transport/hold.rs`), so that
//!    GOAWAY never finds it half-way through sending one;
//!    (`transport/settle.rs` holds the second GOAWAY back until the calls the client
//!    sent before it saw the first have arrived, so each is answered);
//! 3. each connection closes once its last call has answered;
//! 4. at the deadline, the calls still open are answered `UNAVAILABLE`
//!    (`transport/cut.rs`), and a moment later the connections still open are
//!    dropped.
//!
//! The limits ([`Limits`], from the flags) and where each is enforced:
//!
//! | limit | where |
//! | --- | --- |
//! | most connections | the accept loop: a semaphore permit per connection; without one, the socket is closed at once |
//! | handshake timeout | [`handshake::preface_within`]: the socket is closed if the 24-byte HTTP/2 preface has not arrived in time; with TLS, [`handshake::tls_within`] bounds the TLS handshake and the preface together |
//! | idle timeout | [`OpenCalls`]: GOAWAY once no call has been open for that long |
//! | streams per connection, keepalive | hyper's HTTP/2 settings, sent to the client |
//! | a flood of resets | h2 sends GOAWAY (`ENHANCE_YOUR_CALM`) to a client that resets streams faster than they are accepted |

use std::{convert::Infallible, sync::Arc, time::Duration};

use http::{Request, Response};
use hyper::{body::Incoming, server::conn::http2};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use grpc_telemetry::outcome::{Observe, PLAINTEXT_ON_TLS};

use crate::metrics::rpc::RpcMetrics;

use super::{
    calls::{OpenCalls, ServedCalls},
    handshake::{self, Began},
    tls::ServerTls,
};
pub use cut::CUT_SHORT;
use cut::Cut;
use hold::{Gate, Hold};
use settings::settings;
use settle::Settling;

mod cut;
mod hold;
mod settings;
mod settle;

/// What the transport bounds, from the flags (see `serving::flags`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-connections`.
    pub max_connections: u32,
    /// `--handshake-timeout`.
    pub handshake_timeout: Duration,
    /// `--idle-timeout`.
    pub idle_timeout: Duration,
    /// `--max-streams-per-connection`.
    pub max_streams_per_connection: u32,
    /// `--keepalive-interval`.
    pub keepalive_interval: Duration,
    /// `--keepalive-timeout`.
    pub keepalive_timeout: Duration,
}

/// While closing, how long a client must have sent no new call before its
/// connection gets GOAWAY: far longer than a client takes to send its next
/// call after an answer, even on a busy machine (shorter ones lost calls:
/// `docs/performance.md`, "GOAWAY and the quiet period").
const QUIET: Duration = Duration::from_secs(1);
/// While closing, the longest GOAWAY waits for a client to go quiet: a
/// client that ignores the retry hint and keeps sending gets GOAWAY after
/// this, and the rest of the grace to have its last calls answered.
const QUIET_AT_MOST: Duration = Duration::from_secs(3);
/// How long the accept loop waits after a failed `accept` (out of file
/// descriptors, most often) before trying again, rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connections of one server, served in a task until [`Transport::close`].
#[derive(Debug)]
pub struct Transport {
    /// `Some(quiet_until)` tells the accept loop and every connection to
    /// close: GOAWAY once the client is quiet, or at `quiet_until`.
    closing: watch::Sender<Option<Instant>>,
    /// The accept loop, which owns every connection's task.
    task: tokio::task::JoinHandle<()>,
    /// Cancelled at the end of the grace: every call still open is
    /// answered `UNAVAILABLE` ([`cut`]).
    cut: CancellationToken,
}

/// What a [`Transport`] serves on every connection: a tower service from
/// HTTP requests to responses (the tonic router, in our layers), cloned
/// once per connection and run on any task. Named once here so that each
/// function of the accept loop says `S: HttpService<B>` rather than
/// repeating the five bounds hyper needs.
pub trait HttpService<B>:
    tower::Service<
        Request<Incoming>,
        Response = Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S where
    S: tower::Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// The body of a response a [`Transport`] sends: any HTTP body of bytes
/// that can move between tasks, whose error hyper can report.
pub trait ResponseBody:
    hyper::body::Body<
        Data = hyper::body::Bytes,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Send
    + Unpin
    + 'static
{
}

impl<B> ResponseBody for B where
    B: hyper::body::Body<
            Data = hyper::body::Bytes,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Send
        + Unpin
        + 'static
{
}

impl Transport {
    /// Starts accepting on `listener` and serving `service` on every
    /// connection, within `limits`, each call timed in `metrics` (if any)
    /// and traced; over TLS with `tls`.
    pub fn start<S, B>(
        listener: TcpListener,
        service: S,
        metrics: Option<Arc<RpcMetrics>>,
        limits: Limits,
        tls: Option<Arc<ServerTls>>,
    ) -> Transport
    where
        S: HttpService<B>,
        B: ResponseBody,
    {
        let (closing, closed) = watch::channel(None);
        let cut = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            (Cut::new(service, cut.clone()), metrics, cut.clone()),
            limits,
            tls,
            closed,
        ));
        Transport { closing, task, cut }
    }

    /// Closes as the module docs say: no new connections, GOAWAY on every
    /// open one once its client is quiet (at `quiet_until` at the latest),
    /// then waits until each has answered its last call, or until
    /// `cut_at`, when the calls still open are answered `UNAVAILABLE`
    /// ([`CUT_SHORT`]), or until `drop_at`, when the connections still
    /// open are dropped. Returns how many were dropped.
    pub async fn close(mut self, quiet_until: Instant, cut_at: Instant, drop_at: Instant) -> usize {
        self.closing.send_replace(Some(quiet_until));
        if tokio::time::timeout_at(cut_at, &mut self.task)
            .await
            .is_ok()
        {
            return 0;
        }
        self.cut.cancel();
        if tokio::time::timeout_at(drop_at, &mut self.task)
            .await
            .is_ok()
        {
            return 0;
        }
        // The accept loop counts what it drops as it is cancelled: ask it.
        let open = self.closing.receiver_count().saturating_sub(1);
        self.task.abort();
        let _ = (&mut self.task).await;
        open
    }
}

impl Drop for Transport {
    /// A server whose `serve` future is dropped half-way (a test ending)
    /// does not leave its connections served on their own.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until told to close, then waits for the open ones to
/// finish. Dropping this future (the task aborted) drops every connection.
async fn accept_loop<S, B>(
    listener: TcpListener,
    service: Served<S>,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    mut closed: watch::Receiver<Option<Instant>>,
) where
    S: HttpService<B>,
    B: ResponseBody,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let http2 = settings(&limits);
    let mut connections = JoinSet::new();
    // Set once the limit has been reached, so that the log says so once per
    // episode rather than once per refused socket.
    let mut full = false;
    loop {
        let accepted = tokio::select! {
            _ = closed.wait_for(Option::is_some) => break,
            // Reap finished connections as we go, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                warn!(%error, "cannot accept a connection; trying again shortly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Each connection holds a permit until it closes. Without one the
        // socket is dropped here: the client sees its connection closed at
        // once (and retries elsewhere or later) instead of waiting in the
        // kernel's backlog, and the server's file descriptors stay bounded.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if !full {
                warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached: refusing new connections"
                );
                full = true;
            }
            drop(stream);
            continue;
        };
        full = false;
        connections.spawn(connection(
            stream,
            slot,
            service.clone(),
            http2.clone(),
            limits,
            tls.clone(),
            closed.clone(),
        ));
    }
    // No new connections from here: the listening socket is closed now,
    // not after the open connections have drained.
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What every connection is served with: the service (its calls cut at the
/// end of the grace), the metrics its calls are timed in, and the cut
/// itself (see [`cut`]), which the connection's [`Settling`] watches too.
type Served<S> = (S, Option<Arc<RpcMetrics>>, CancellationToken);

/// Serves one connection until it closes: on its own, by GOAWAY once idle,
/// or by GOAWAY when the server closes. `_slot` is its place under
/// `--max-connections`, given back when this ends. With `tls`, the TLS
/// handshake comes first, within the handshake timeout.
async fn connection<S, B>(
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    service: Served<S>,
    http2: http2::Builder<TokioExecutor>,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    mut closed: watch::Receiver<Option<Instant>>,
) where
    S: HttpService<B>,
    B: ResponseBody,
{
    // TCP_NODELAY: tiny buzzer events go out at once, not held back by Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let cut = service.2.clone();
    let Some(tls) = tls else {
        // A socket that never speaks HTTP/2 goes no further, and gives its
        // slot back; nor does one still silent when the server closes.
        tokio::select! {
            began = handshake::preface_within(&stream, limits.handshake_timeout) => {
                if let Err(error) = began {
                    debug!(%error, "connection closed before HTTP/2 began");
                    return;
                }
            }
            _ = closed.wait_for(Option::is_some) => return,
        }
        let (give_back, given_back) = oneshot::channel();
        let gate = Gate::new(cut.clone());
        let stream = Settling::new(stream, cut, gate.clone(), give_back);
        serve(TokioIo::new(stream), service, gate, http2, limits, closed).await;
        // hyper is done with it: closed once the client has closed too.
        if let Ok(socket) = given_back.await {
            settle::linger(socket).await;
        }
        return;
    };
    // The same bound, over the TLS handshake and then the preface. The
    // acceptor is taken now: a reload from here on is for the next
    // connection, this one keeps the certificate it was offered.
    let began = tokio::select! {
        began = handshake::tls_within(tls.acceptor(), stream, limits.handshake_timeout) => began,
        _ = closed.wait_for(Option::is_some) => return,
    };
    match began {
        Ok(Began::Tls(stream)) => {
            let (give_back, given_back) = oneshot::channel();
            let gate = Gate::new(cut.clone());
            let stream = Settling::new(*stream, cut, gate.clone(), give_back);
            serve(TokioIo::new(stream), service, gate, http2, limits, closed).await;
            if let Ok(socket) = given_back.await {
                settle::linger(socket).await;
            }
        }
        Ok(Began::Plaintext(stream)) => {
            debug!("plaintext HTTP/2 on the TLS port: answering that TLS is needed");
            refuse_plaintext(stream, http2, limits.handshake_timeout).await;
        }
        Err(error) => debug!(%error, "connection closed before TLS and HTTP/2 began"),
    }
}

/// Answers every call of a plaintext HTTP/2 client `UNAVAILABLE` with
/// [`PLAINTEXT_ON_TLS`], for at most `timeout` (the handshake timeout: this
/// connection never gets further, so it is bounded as a handshake is).
/// Nothing of the service is reachable this way.
async fn refuse_plaintext(
    stream: TcpStream,
    http2: http2::Builder<TokioExecutor>,
    timeout: Duration,
) {
    let refuse = hyper::service::service_fn(|_request: Request<Incoming>| async {
        let status = tonic::Status::unavailable(PLAINTEXT_ON_TLS);
        Ok::<_, Infallible>(status.into_http::<tonic::body::Body>())
    });
    let connection = http2.serve_connection(TokioIo::new(stream), refuse);
    if let Ok(ended) = tokio::time::timeout(timeout, connection).await {
        log_end(ended);
    }
}

/// Serves HTTP/2 on an established connection (TCP, or TLS over it) until
/// it closes: on its own, by GOAWAY once idle, or by GOAWAY when the server
/// closes, its new calls held by `gate` from then until the client has
/// read GOAWAY ([`hold`]).
async fn serve<I, S, B>(
    io: I,
    (service, metrics, _cut): Served<S>,
    gate: Gate,
    http2: http2::Builder<TokioExecutor>,
    limits: Limits,
    mut closed: watch::Receiver<Option<Instant>>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: HttpService<B>,
    B: ResponseBody,
{
    let calls = OpenCalls::default();
    // Every call counted open (for the timers below), timed and traced.
    let watched = ServedCalls::new(calls.clone(), metrics);
    let service = Hold::new(service, gate.clone());
    let service = TowerToHyperService::new(Observe::new(service, watched));
    let connection = http2.serve_connection(io, service);
    tokio::pin!(connection);

    let closing = async {
        // Err only if the transport is gone, which aborts this task anyway.
        match closed.wait_for(Option::is_some).await {
            Ok(quiet_until) => *quiet_until,
            Err(_) => None,
        }
    };
    tokio::select! {
        ended = connection.as_mut() => return log_end(ended),
        quiet_until = closing => {
            // The client has been answered UNAVAILABLE with a hint to come
            // back later; GOAWAY once it has stopped sending, so that no
            // call of its is caught half-sent (see `serving::server`). Its
            // new calls wait for their answers until it has read GOAWAY, so
            // a client that sends again after each answer goes quiet. One
            // that keeps sending gets GOAWAY anyway, a little later.
            gate.close();
            let quiet_until = quiet_until
                .unwrap_or_else(Instant::now)
                .min(Instant::now() + QUIET_AT_MOST);
            let quiet = tokio::time::timeout_at(quiet_until, calls.quiet_for(QUIET));
            tokio::select! {
                ended = connection.as_mut() => return log_end(ended),
                _ = quiet => {}
            }
        }
        () = calls.idle_for(limits.idle_timeout) => debug!("idle connection: GOAWAY"),
    }
    // GOAWAY: the calls already sent are answered, no new ones are taken,
    // and the connection closes after the last answer.
    connection.as_mut().graceful_shutdown();
    log_end(connection.await);
}

/// Logs how a connection ended, if badly: a client that vanished, a
/// handshake that timed out, a protocol error. Only the client is affected,
/// so it is not a warning of the server's.
fn log_end(ended: Result<(), hyper::Error>) {
    if let Err(error) = ended {
        debug!(%error, "connection closed");
    }
}

#[cfg(test)]
mod tests;
