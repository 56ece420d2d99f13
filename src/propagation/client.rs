//! The client's side of a call: a client span under the current span, and
//! its context written into the request's headers.

use std::task::{Context, Poll};

use tower::{Layer, Service};
use tracing_opentelemetry_instrumentation_sdk::{
    find_context_from_tracing,
    http::{grpc_client, inject_context},
};

use super::{
    call::{CallSpan, Side, TracedResponse},
    is_traced,
};

/// Client side: runs each call in a client span, child of the current span,
/// and sends that span's context with the request.
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
    type Response = http::Response<super::TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        if !is_traced(request.uri().path()) {
            return TracedResponse::new(self.inner.call(request), None, None);
        }
        let span = grpc_client::make_span_from_request(&request);
        // The span's context, or (nothing exported) the current one: a call
        // made while serving a traced caller passes the caller's trace on.
        inject_context(&find_context_from_tracing(&span), request.headers_mut());
        let call = CallSpan::new(span, Side::Client, None);
        let inner = match &call {
            Some(call) => {
                let _in_call = call.enter();
                self.inner.call(request)
            }
            None => self.inner.call(request),
        };
        TracedResponse::new(inner, call, None)
    }
}
