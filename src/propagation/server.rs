//! The server's side of a call: the caller's context read from the request,
//! the server span opened under it, and the trace id sent back.

use std::task::{Context, Poll};

use http::HeaderValue;
use opentelemetry::trace::TraceContextExt;
use tower::{Layer, Service};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_opentelemetry_instrumentation_sdk::{
    http::{extract_context, grpc_server},
    set_parent_or_fallback,
};

use super::{
    call::{CallSpan, Side, TracedResponse},
    is_traced,
};

/// Server side: reads the caller's trace context and runs each call in a
/// server span, answering with the trace id in `x-trace-id`. Add with
/// `Server::builder().layer(GrpcServerTraceLayer)`.
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
    type Response = http::Response<super::TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if !is_traced(request.uri().path()) {
            return TracedResponse::new(self.inner.call(request), None, None);
        }
        let span = grpc_server::make_span_from_request(&request);
        // Must happen before anything else looks at the span: once started,
        // a span's parent is fixed. When the span cannot take the parent
        // (nothing is exported), the caller's context comes back, to be made
        // current while the call runs instead; an empty one is not worth it.
        let caller = extract_context(request.headers());
        let fallback = set_parent_or_fallback(&span, caller)
            .filter(|context| context.span().span_context().is_valid());
        let trace_id = trace_id_header(&span, fallback.as_ref());
        let call = CallSpan::new(span, Side::Server, fallback);
        let inner = match &call {
            Some(call) => {
                let _in_call = call.enter();
                self.inner.call(request)
            }
            None => self.inner.call(request),
        };
        TracedResponse::new(inner, call, trace_id)
    }
}

/// The `x-trace-id` value: the server span's trace id when it is exported,
/// else the caller's (from `traceparent`), else none.
fn trace_id_header(span: &Span, fallback: Option<&opentelemetry::Context>) -> Option<HeaderValue> {
    let own = span.context();
    let context = if own.span().span_context().is_valid() {
        &own
    } else {
        fallback?
    };
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| HeaderValue::from_str(&span_context.trace_id().to_string()).ok())
        .flatten()
}
