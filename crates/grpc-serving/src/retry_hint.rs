//! While a server closes, every `UNAVAILABLE` it answers says when to come
//! back: not before the server has gone.
//!
//! A client told `UNAVAILABLE` retries, which is the point; but one that
//! retries at once on the same connection is still sending when the server
//! sends GOAWAY, and a call caught in the client's queue at that moment
//! fails there (tonic's client answers it `CANCELLED` or `INTERNAL`, as it
//! was never sent). So while closing, [`RetryHintLayer`] adds to each
//! `UNAVAILABLE` the time left until the server will have closed, in the
//! two forms clients read:
//!
//! - the `grpc-retry-pushback-ms` trailer, which gRPC clients with a retry
//!   policy honour (they wait that long before retrying here);
//! - a `google.rpc.RetryInfo` detail (`retry_delay`), for programs that
//!   read the rich error model (tonic-types' `StatusExt`).
//!
//! A client with another replica to go to should go there at once; the
//! message says so. Only answers whose status is in the headers
//! (trailers-only, which is how a call refused before its first message is
//! answered) are touched; a stream that ends later keeps its own status.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use http::{HeaderValue, Response};
use tokio::{sync::watch, time::Instant};
use tonic::{Code, Status, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

/// The header (trailer, in a trailers-only answer) gRPC clients read for
/// how long to wait before retrying.
pub const PUSHBACK: &str = "grpc-retry-pushback-ms";

/// When the server will have gone, once it is closing.
#[derive(Debug, Clone)]
pub struct ClosingAt(watch::Receiver<Option<Instant>>);

/// Sets [`ClosingAt`]: the server's closing sequence holds it.
#[derive(Debug)]
pub struct Closing(watch::Sender<Option<Instant>>);

/// A new pair: not closing yet.
pub fn closing() -> (Closing, ClosingAt) {
    let (tx, rx) = watch::channel(None);
    (Closing(tx), ClosingAt(rx))
}

impl Closing {
    /// From now on, `UNAVAILABLE` answers say to come back after `gone_by`.
    pub fn starts(&self, gone_by: Instant) {
        self.0.send_replace(Some(gone_by));
    }
}

/// Adds the retry hint to `UNAVAILABLE` answers while closing (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct RetryHintLayer(pub ClosingAt);

impl<S> Layer<S> for RetryHintLayer {
    type Service = RetryHint<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryHint {
            inner,
            closing: self.0.clone(),
        }
    }
}

/// The service made by [`RetryHintLayer`].
#[derive(Debug, Clone)]
pub struct RetryHint<S> {
    inner: S,
    closing: ClosingAt,
}

impl<S, R, B> Service<http::Request<R>> for RetryHint<S>
where
    S: Service<http::Request<R>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<R>) -> Self::Future {
        let response = self.inner.call(request);
        let closing = self.closing.clone();
        Box::pin(async move {
            let mut response = response.await?;
            // Copied out: the channel's lock is not held past this line.
            let gone_by = *closing.0.borrow();
            if let Some(gone_by) = gone_by {
                add_hint(response.headers_mut(), gone_by);
            }
            Ok(response)
        })
    }
}

/// `UNAVAILABLE` with `message` and a hint to come back after `wait`, in
/// both forms: for a server that is up but cannot serve for a moment (its
/// store is failing, say), rather than closing.
pub fn unavailable(message: impl Into<String>, wait: Duration) -> Status {
    let details = ErrorDetails::with_retry_info(Some(wait));
    let mut status = Status::with_error_details(Code::Unavailable, message, details);
    if let Ok(millis) = MetadataValue::try_from(wait.as_millis().to_string()) {
        status.metadata_mut().insert(PUSHBACK, millis);
    }
    status
}

/// Adds the hint to a trailers-only `UNAVAILABLE` in `headers`.
fn add_hint(headers: &mut http::HeaderMap, gone_by: Instant) {
    let Some(status) = Status::from_header_map(headers) else {
        return; // the status comes later, in trailers
    };
    if status.code() != Code::Unavailable {
        return;
    }
    // Rounded up to the next whole second: a hint, not a timer.
    let wait = gone_by.saturating_duration_since(Instant::now());
    let wait = Duration::from_secs(wait.as_secs() + 1);
    let mut details = status.get_error_details();
    details.set_retry_info(Some(wait));
    let hinted = Status::with_error_details(status.code(), status.message(), details);
    if hinted.add_header(headers).is_ok() {
        headers.insert(PUSHBACK, HeaderValue::from(wait.as_millis() as u64));
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn answered(status: &Status) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_gets_both_hints_and_keeps_its_details() {
        let details = ErrorDetails::with_bad_request_violation("field", "wrong");
        let status = Status::with_error_details(Code::Unavailable, "closing", details);
        let mut headers = answered(&status);
        add_hint(&mut headers, Instant::now() + Duration::from_millis(2_500));

        assert_eq!(headers[PUSHBACK], "3000");
        let hinted = Status::from_header_map(&headers).unwrap();
        assert_eq!(hinted.code(), Code::Unavailable);
        assert_eq!(hinted.message(), "closing");
        let retry = hinted.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
        assert!(hinted.get_details_bad_request().is_some(), "kept");
    }

    #[tokio::test(start_paused = true)]
    async fn other_answers_are_left_alone() {
        let gone_by = Instant::now() + Duration::from_secs(1);
        let mut headers = answered(&Status::not_found("no such order"));
        add_hint(&mut headers, gone_by);
        assert!(!headers.contains_key(PUSHBACK));

        let mut headers = http::HeaderMap::new(); // a stream's first headers
        add_hint(&mut headers, gone_by);
        assert!(headers.is_empty());
    }
}
