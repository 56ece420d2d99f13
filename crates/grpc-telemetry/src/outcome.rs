//! A call's outcome, read once for whoever watches calls: its span (see
//! [`crate::propagation`]), and on a server its metrics and the count of
//! open calls.
//!
//! A gRPC call ends when its status is known, which is not when the handler
//! returns. An error answered at once comes "trailers-only", its
//! `grpc-status` in the response headers; every other call, and every
//! stream, ends with the trailers at the end of the body (for a buzzer,
//! minutes later); a body dropped before its trailers is a call that was
//! cancelled (the client reset it, the connection went away). So the
//! watcher, a [`CallObserver`], travels from the response future
//! ([`ObservedResponse`]) into the body ([`ObservedBody`]) and is told the
//! outcome exactly once, by whichever of them sees it first; dropped
//! untold, it hears `CANCELLED`.
//!
//! One wrapper for every observer: the edge cases are handled in one place,
//! and a call pays for one wrapper, however many concerns watch it.

use std::{
    borrow::Cow,
    fmt::Display,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;
use tower::{Layer, Service};

use crate::propagation::InCall;

/// The header (or trailer) with a call's status code. A `HeaderName` made
/// once: looking a `&str` up parses and checks it on every call.
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The gRPC status codes by number, as the spec names them: the
/// `grpc_code` label of the servers' metrics and the rows of `cafe bench`'s
/// results.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a status code as the gRPC spec writes it, e.g.
/// `DEADLINE_EXCEEDED`.
pub fn code_name(code: Code) -> &'static str {
    CODE_NAMES[code as usize]
}

/// What a plaintext gRPC client on a TLS port is told by our servers, as
/// the status of every call it makes there (so that our client can
/// recognise it): in words, so that `cafe`, grpcurl or any other
/// client shows the fix rather than a protocol error.
pub const PLAINTEXT_ON_TLS: &str = "this server speaks TLS only: connect with https:// (and --ca if its certificate is from a private CA)";

/// How a call ended: its gRPC status code, and where its message is.
#[derive(Clone, Copy)]
pub struct Outcome<'a> {
    /// The call's status code.
    pub code: Code,
    reason: Reason<'a>,
}

#[derive(Clone, Copy)]
enum Reason<'a> {
    /// The status the other side sent, in these headers or trailers.
    Sent(&'a HeaderMap),
    /// No status was sent; why the call ended.
    Ended(&'a str),
    /// The call failed before its response: this error.
    Failed(&'a dyn Display),
}

impl Outcome<'_> {
    /// The status message. Read only when asked: parsing it costs more than
    /// the code, and most observers need only the code.
    pub fn message(&self) -> Cow<'_, str> {
        match self.reason {
            Reason::Sent(headers) => tonic::Status::from_header_map(headers)
                .map_or(Cow::Borrowed(""), |status| {
                    Cow::Owned(status.message().to_owned())
                }),
            Reason::Ended(why) => Cow::Borrowed(why),
            Reason::Failed(error) => Cow::Owned(error.to_string()),
        }
    }

    /// The outcome carried by `headers` (or trailers), if they carry one.
    fn sent_in(headers: &HeaderMap) -> Option<Outcome<'_>> {
        let code = Code::from_bytes(headers.get(&GRPC_STATUS)?.as_bytes());
        Some(Outcome {
            code,
            reason: Reason::Sent(headers),
        })
    }

    fn ended(code: Code, why: &str) -> Outcome<'_> {
        Outcome {
            code,
            reason: Reason::Ended(why),
        }
    }
}

/// What watches one call until its outcome is known.
pub trait CallObserver {
    /// Entered while the call's own code runs: while its response is
    /// built and awaited, and while each streamed message is encoded.
    fn enter(&self) -> Option<InCall<'_>> {
        None
    }

    /// The response head has arrived: a chance to add headers to it.
    fn respond(&mut self, _headers: &mut HeaderMap) {}

    /// The call is over; told once.
    fn finish(self, outcome: Outcome<'_>);
}

/// An observer that may not be there (a call nobody traces).
impl<O: CallObserver> CallObserver for Option<O> {
    fn enter(&self) -> Option<InCall<'_>> {
        self.as_ref().and_then(O::enter)
    }

    fn respond(&mut self, headers: &mut HeaderMap) {
        if let Some(observer) = self {
            observer.respond(headers);
        }
    }

    fn finish(self, outcome: Outcome<'_>) {
        if let Some(observer) = self {
            observer.finish(outcome);
        }
    }
}

/// Makes the observer of each call from its request (and may add to the
/// request: a client writes its trace context there).
pub trait MakeObserver {
    /// The observer of one call.
    type Observer: CallObserver;

    /// Starts watching the call of `request`.
    fn observe<B>(&self, request: &mut http::Request<B>) -> Self::Observer;
}

/// An observer until it is told; dropped untold, the call was cancelled.
struct Watching<O: CallObserver>(Option<O>);

impl<O: CallObserver> Watching<O> {
    fn finish(&mut self, outcome: Outcome<'_>) {
        if let Some(observer) = self.0.take() {
            observer.finish(outcome);
        }
    }

    fn enter(&self) -> Option<InCall<'_>> {
        self.0.as_ref().and_then(O::enter)
    }
}

impl<O: CallObserver> Drop for Watching<O> {
    fn drop(&mut self) {
        self.finish(Outcome::ended(
            Code::Cancelled,
            "the call ended before its status arrived",
        ));
    }
}

/// Watches every call of a service with the observers `M` makes.
#[derive(Debug, Clone)]
pub struct Observe<S, M> {
    inner: S,
    make: M,
}

impl<S, M> Observe<S, M> {
    /// `inner`, its calls watched by what `make` makes.
    pub fn new(inner: S, make: M) -> Self {
        Observe { inner, make }
    }
}

/// The layer of [`Observe`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer<M>(pub M);

impl<S, M: Clone> Layer<S> for ObserveLayer<M> {
    type Service = Observe<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe::new(inner, self.0.clone())
    }
}

impl<S, M, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observe<S, M>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Display,
    M: MakeObserver,
{
    type Response = http::Response<ObservedBody<ResBody, M::Observer>>;
    type Error = S::Error;
    type Future = ObservedResponse<S::Future, M::Observer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let call = Watching(Some(self.make.observe(&mut request)));
        let inner = {
            let _in_call = call.enter();
            self.inner.call(request)
        };
        ObservedResponse { inner, call }
    }
}

pin_project! {
    /// The response future of a watched call: runs inside the call, and
    /// moves its observer into the body when the response head arrives,
    /// or tells it there when the head carries the status.
    pub struct ObservedResponse<F, O: CallObserver> {
        #[pin]
        inner: F,
        call: Watching<O>,
    }
}

impl<F, B, E, O> Future for ObservedResponse<F, O>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Display,
    O: CallObserver,
{
    type Output = Result<http::Response<ObservedBody<B, O>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _in_call = this.call.enter();
            this.inner.poll(cx)
        };
        let Poll::Ready(result) = polled else {
            return Poll::Pending;
        };
        let mut call = Watching(this.call.0.take());
        match result {
            Ok(mut response) => {
                if let Some(observer) = &mut call.0 {
                    observer.respond(response.headers_mut());
                }
                // An error answered at once comes "trailers-only": the
                // status is in the headers and the call is over.
                if let Some(outcome) = Outcome::sent_in(response.headers()) {
                    call.finish(outcome);
                }
                Poll::Ready(Ok(response.map(|inner| ObservedBody { inner, call })))
            }
            Err(error) => {
                call.finish(Outcome {
                    code: Code::Unavailable,
                    reason: Reason::Failed(&error),
                });
                Poll::Ready(Err(error))
            }
        }
    }
}

pin_project! {
    /// A response body that tells its call's observer the outcome when the
    /// trailers (with the gRPC status) pass, or when it ends or is dropped
    /// without them.
    pub struct ObservedBody<B, O: CallObserver> {
        #[pin]
        inner: B,
        call: Watching<O>,
    }
}

impl<B: Body, O: CallObserver> Body for ObservedBody<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // Encoding a streamed message happens here, inside the call.
        let polled = {
            let _in_call = this.call.enter();
            this.inner.poll_frame(cx)
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(outcome) = frame.trailers_ref().and_then(Outcome::sent_in) {
                    this.call.finish(outcome);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.call
                    .finish(Outcome::ended(Code::Unknown, "the response body failed"));
            }
            Poll::Ready(None) => this.call.finish(Outcome::ended(
                Code::Unknown,
                "the response ended without a gRPC status",
            )),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
