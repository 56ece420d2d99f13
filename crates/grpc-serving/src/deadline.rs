//! gRPC deadlines on the server side: reading the caller's `grpc-timeout`,
//! handing it to the handler, and answering `DEADLINE_EXCEEDED` when it runs
//! out.
//!
//! A gRPC client sends how long it is willing to wait in the `grpc-timeout`
//! header (tonic's `Request::set_timeout`). A well-behaved server does two
//! things with it: it stops working for a caller who has gone, and it
//! *propagates* what is left of the deadline to the calls it makes on the
//! caller's behalf (the café's `Brew` call to a barista).
//!
//! # Why a layer of our own (the tonic quirk)
//!
//! tonic's server already honours `grpc-timeout`, but when it runs out it
//! answers `CANCELLED` "Timeout expired", while the gRPC spec (and every other
//! gRPC implementation) says `DEADLINE_EXCEEDED`. tonic puts its timer
//! *outside* every layer we can add with `Server::layer`, so we cannot
//! rewrite its answer. Instead [`DeadlineLayer`] runs its own timer, started
//! in the same synchronous `call` chain a few microseconds later, and set
//! [`EARLY`] before the caller's deadline, so ours always fires first and the
//! caller gets `DEADLINE_EXCEEDED`.
//!
//! Why [`EARLY`] is not a hair but 20 ms: a tonic *client* runs the same
//! timer on its side (with the same `CANCELLED` answer), started when it
//! sent the request. The server's answer must cross the network and reach
//! the client before that, so the server gives up early by more than a
//! round trip on a busy machine. Each hop does the same, so a deeper call
//! (the café's `Brew` to a barista) always runs out before its caller.
//!
//! The layer also puts the deadline into the request's extensions as a
//! [`CallerDeadline`], so a handler reads it without parsing headers.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use http::HeaderMap;
use tokio::time::Instant;
use tonic::Status;
use tower::{Layer, Service};

/// How much earlier than the caller's deadline the server gives up: enough
/// for the answer to reach a caller whose own timer started a round trip
/// earlier (see the module docs), and more than the 1 ms resolution of
/// tokio's timer, so ours always fires before tonic's server-side one.
pub const EARLY: Duration = Duration::from_millis(20);

/// When the caller stops waiting, as the server's clock sees it. Found in
/// the request extensions of every call that carried a `grpc-timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallerDeadline(pub Instant);

impl CallerDeadline {
    /// The deadline of a tonic request, if its caller gave one.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Instant> {
        request
            .extensions()
            .get::<CallerDeadline>()
            .map(|deadline| deadline.0)
    }
}

/// Reads a `grpc-timeout` header: 1 to 8 digits and a unit (`H`ours,
/// `M`inutes, `S`econds, `m`illis, `u`micros, `n`anos). `None` when absent
/// or malformed (a malformed one is ignored, as tonic does).
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Honours the caller's `grpc-timeout` with `DEADLINE_EXCEEDED` (see the
/// module docs). Add it with `Server::builder().layer(DeadlineLayer)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

/// The service [`DeadlineLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Deadline<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let Some(timeout) = grpc_timeout(request.headers()) else {
            return Box::pin(self.inner.call(request));
        };
        let deadline = Instant::now() + timeout.saturating_sub(EARLY);
        request.extensions_mut().insert(CallerDeadline(deadline));
        let response = self.inner.call(request);
        Box::pin(async move {
            // Whichever comes first. When the timer wins, `select!` drops the
            // handler's future: its drop guards run (the café cancels an
            // order nobody waits for) and nothing more is done for a caller
            // who has gone. For a streaming call this only bounds the wait
            // for the response headers; the handler bounds the stream itself
            // with the `CallerDeadline`.
            tokio::select! {
                biased;
                response = response => response,
                () = tokio::time::sleep_until(deadline) => Ok(Status::deadline_exceeded(format!(
                    "the caller's deadline of {timeout:?} passed before the answer was ready"
                ))
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_of(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", value.parse().unwrap());
        grpc_timeout(&headers)
    }

    #[test]
    fn grpc_timeout_units_are_read_and_nonsense_ignored() {
        assert_eq!(timeout_of("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout_of("3S"), Some(Duration::from_secs(3)));
        assert_eq!(timeout_of("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout_of("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(timeout_of("123456789S"), None, "more than 8 digits");
        assert_eq!(timeout_of("S"), None);
        assert_eq!(timeout_of("-1S"), None);
        assert_eq!(timeout_of("10x"), None);
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }
}
