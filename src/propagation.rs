//! One trace from the client through the café to the barista: the W3C
//! trace context carried in gRPC metadata, and a span for every call.
//!
//! A process only knows its own spans. To stitch them into one trace, the
//! caller writes its span's identity into the request's headers
//! (`traceparent: 00-<trace id>-<span id>-01`, plus `tracestate` and
//! `baggage` if any), and the server reads it back and makes its span a child
//! of the caller's. gRPC metadata *is* HTTP/2 headers, so this is the same
//! W3C Trace Context that HTTP services use.
//!
//! Both ends are written once, here, as tower layers, so no handler has to
//! think about it:
//! - [`GrpcServerTraceLayer`], for `Server::builder().layer(...)`: extracts
//!   the caller's context, opens the server span (named
//!   `cafe.v1.Cafe/OrderCoffee`, with the OpenTelemetry RPC attributes), runs
//!   the handler inside it, and answers with the trace id in `x-trace-id`.
//! - [`GrpcClientTraceLayer`] (or [`traced`]), around a client's `Channel`:
//!   opens the client span as a child of the current span and injects it.
//!
//! When does a call end? Not when the handler returns: a server-streaming
//! call (a buzzer, the board) goes on until its last message, and its status
//! arrives in the HTTP/2 *trailers*. So both layers keep the span inside the
//! response body ([`TracedBody`]) and close it when the trailers pass by,
//! recording `rpc.grpc.status_code`; a body dropped before its trailers is a
//! cancelled call. No span is left open forever.
//!
//! Health checks and reflection are not traced: a load balancer probing
//! every second would bury the interesting traces.

use std::{
    pin::Pin,
    sync::LazyLock,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::{
    propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use pin_project_lite::pin_project;
use tonic::Code;
use tower::{Layer, Service};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The response header (metadata) in which a traced server returns the
/// call's trace id, e.g. `4bf92f3577b34da6a3ce929d0e0e4736`.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// The propagators both layers use: W3C `traceparent`/`tracestate` and W3C
/// `baggage`. Also installed as OpenTelemetry's global propagator by
/// [`crate::telemetry::init`].
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(propagator);

/// The trace id a traced server returned in `x-trace-id`, if any.
pub fn trace_id_from(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get(TRACE_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The current span's trace context, to keep with work that another task
/// picks up later (an order waiting in line for a remote barista) so that
/// the work joins the same trace. Holding it does not keep the span open,
/// unlike holding the `Span` itself.
pub fn current_context() -> opentelemetry::Context {
    Span::current().context()
}

/// Makes `span` a child of `context` (from [`current_context`]) rather than
/// of the current span. Call it before the span is first entered; without
/// telemetry it does nothing.
pub fn join_trace(span: &Span, context: opentelemetry::Context) {
    let _ = span.set_parent(context);
}

/// Writes the context into request headers.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Reads the context from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Which side of a call a span describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

impl Side {
    /// Whether `code` marks the span as failed. The RPC conventions differ
    /// by side: a client failed whenever it did not get OK; a server only
    /// when the fault is its own (NOT_FOUND or INVALID_ARGUMENT is the
    /// server doing its job).
    fn is_error(self, code: Code) -> bool {
        match self {
            Side::Client => code != Code::Ok,
            Side::Server => matches!(
                code,
                Code::Unknown
                    | Code::DeadlineExceeded
                    | Code::Unimplemented
                    | Code::Internal
                    | Code::Unavailable
                    | Code::DataLoss
            ),
        }
    }
}

/// Opens the span for a call to `path` (`/cafe.v1.Cafe/OrderCoffee`), or
/// returns `None` for calls that are not traced.
fn call_span(path: &str, side: Side) -> Option<Span> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service == "grpc.health.v1.Health" || service.starts_with("grpc.reflection.") {
        return None;
    }
    // The span's name in tracing must be a constant, so the OpenTelemetry
    // name (`service/method`, as the conventions ask) goes in `otel.name`.
    let name = format!("{service}/{method}");
    let span = match side {
        Side::Server => tracing::info_span!(
            "grpc.server",
            otel.name = %name,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        ),
        Side::Client => tracing::info_span!(
            "grpc.client",
            otel.name = %name,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        ),
    };
    Some(span)
}

/// A call's span until its status is known. Dropping it unfinished (the
/// body went away before its trailers) records the call as cancelled.
#[derive(Debug)]
struct CallSpan {
    span: Span,
    side: Side,
    finished: bool,
}

impl CallSpan {
    fn finish(mut self, code: Code, message: &str) {
        self.record(code, message);
    }

    fn record(&mut self, code: Code, message: &str) {
        self.finished = true;
        self.span.record("rpc.grpc.status_code", code as i32);
        if self.side.is_error(code) {
            self.span.record("otel.status_code", "error");
            if !message.is_empty() {
                self.span.record("otel.status_description", message);
            }
        }
    }

    /// Finishes the call from headers or trailers carrying `grpc-status`;
    /// gives the span back if they carry none.
    fn finish_from(self, headers: &HeaderMap) -> Option<Self> {
        match tonic::Status::from_header_map(headers) {
            Some(status) => {
                self.finish(status.code(), status.message());
                None
            }
            None => Some(self),
        }
    }
}

impl Drop for CallSpan {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Code::Cancelled, "the call ended before its status arrived");
        }
    }
}

pin_project! {
    /// A response body that carries its call's span and closes it when the
    /// trailers (with the gRPC status) pass through.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        call: Option<CallSpan>,
    }
}

impl<B> TracedBody<B> {
    fn new(inner: B, call: Option<CallSpan>) -> Self {
        TracedBody { inner, call }
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // Encoding a streamed message happens here, inside the span.
        let polled = {
            let _entered = this.call.as_ref().map(|call| call.span.enter());
            this.inner.poll_frame(cx)
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    *this.call = this.call.take().and_then(|call| call.finish_from(trailers));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown, "the response body failed");
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown, "the response ended without a gRPC status");
                }
            }
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

pin_project! {
    /// The response future of a traced call: runs inside the call's span and
    /// moves the span into the body when the response head arrives.
    pub struct TracedResponse<F> {
        #[pin]
        inner: F,
        call: Option<CallSpan>,
        trace_id: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for TracedResponse<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<http::Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _entered = this.call.as_ref().map(|call| call.span.enter());
            this.inner.poll(cx)
        };
        let result = match polled {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        let call = this.call.take();
        match result {
            Ok(mut response) => {
                if let Some(trace_id) = this.trace_id.take() {
                    response.headers_mut().insert(TRACE_ID_HEADER, trace_id);
                }
                // An error answered at once comes "trailers-only": the
                // status is in the headers and the call is over.
                let call = call.and_then(|call| call.finish_from(response.headers()));
                Poll::Ready(Ok(response.map(|body| TracedBody::new(body, call))))
            }
            Err(error) => {
                if let Some(call) = call {
                    call.finish(Code::Unavailable, &error.to_string());
                }
                Poll::Ready(Err(error))
            }
        }
    }
}

/// Server side: extracts the caller's trace context and runs each call in a
/// server span. Add with `Server::builder().layer(GrpcServerTraceLayer)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcServerTraceLayer;

impl<S> Layer<S> for GrpcServerTraceLayer {
    type Service = GrpcServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerTrace { inner }
    }
}

/// The service made by [`GrpcServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServerTrace<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServerTrace<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let Some(span) = call_span(request.uri().path(), Side::Server) else {
            return TracedResponse {
                inner: self.inner.call(request),
                call: None,
                trace_id: None,
            };
        };
        // Must happen before anything else looks at the span: once started,
        // a span's parent is fixed. Without the OpenTelemetry layer (tests
        // without telemetry) this does nothing, and that is fine.
        let parent = PROPAGATOR.extract(&HeaderExtractor(request.headers()));
        let _ = span.set_parent(parent);
        let span_context = span.context().span().span_context().clone();
        let trace_id = span_context
            .is_valid()
            .then(|| HeaderValue::from_str(&span_context.trace_id().to_string()).ok())
            .flatten();
        let inner = span.in_scope(|| self.inner.call(request));
        TracedResponse {
            inner,
            call: Some(CallSpan {
                span,
                side: Side::Server,
                finished: false,
            }),
            trace_id,
        }
    }
}

/// Client side: runs each call in a client span, child of the current span,
/// and injects that span's context into the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcClientTraceLayer;

impl<S> Layer<S> for GrpcClientTraceLayer {
    type Service = GrpcClientTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientTrace { inner }
    }
}

/// Wraps a client channel so its calls are traced and carry the trace
/// context: `CafeClient::new(propagation::traced(channel))`.
pub fn traced<S>(channel: S) -> GrpcClientTrace<S> {
    GrpcClientTraceLayer.layer(channel)
}

/// The service made by [`GrpcClientTraceLayer`].
#[derive(Debug, Clone)]
pub struct GrpcClientTrace<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClientTrace<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let Some(span) = call_span(request.uri().path(), Side::Client) else {
            return TracedResponse {
                inner: self.inner.call(request),
                call: None,
                trace_id: None,
            };
        };
        PROPAGATOR.inject_context(&span.context(), &mut HeaderInjector(request.headers_mut()));
        let inner = span.in_scope(|| self.inner.call(request));
        TracedResponse {
            inner,
            call: Some(CallSpan {
                span,
                side: Side::Client,
                finished: false,
            }),
            trace_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_calls_are_traced() {
        assert!(call_span("/cafe.v1.Cafe/OrderCoffee", Side::Server).is_some());
        assert!(call_span("/grpc.health.v1.Health/Check", Side::Server).is_none());
        assert!(
            call_span(
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Side::Client
            )
            .is_none()
        );
        assert!(call_span("/not-grpc", Side::Server).is_none());
    }

    #[test]
    fn servers_fail_only_on_their_own_faults() {
        assert!(!Side::Server.is_error(Code::NotFound));
        assert!(Side::Server.is_error(Code::Internal));
        assert!(Side::Client.is_error(Code::NotFound));
        assert!(!Side::Client.is_error(Code::Ok));
    }

    #[test]
    fn context_round_trips_through_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let context = PROPAGATOR.extract(&HeaderExtractor(&headers));
        let mut out = HeaderMap::new();
        PROPAGATOR.inject_context(&context, &mut HeaderInjector(&mut out));
        assert_eq!(out.get("traceparent"), headers.get("traceparent"));
    }
}
