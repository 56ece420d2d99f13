//! The client's side of a call: a client span under the current span, and
//! its context written into the request's headers.

use tracing_opentelemetry_instrumentation_sdk::{find_context_from_tracing, http::inject_context};

use super::{
    call::{CallSpan, Side, call_span},
    is_traced,
};
use crate::outcome::{MakeObserver, Observe};

/// Client side: runs each call in a client span, child of the current span,
/// and sends that span's context with the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTracing;

/// A client channel whose calls are traced and carry the trace context.
pub type GrpcClientTrace<S> = Observe<S, ClientTracing>;

/// Wraps a client channel so its calls are traced and carry the trace
/// context: `CafeClient::new(propagation::traced(channel))`.
pub fn traced<S>(channel: S) -> GrpcClientTrace<S> {
    Observe::new(channel, ClientTracing)
}

impl MakeObserver for ClientTracing {
    type Observer = Option<CallSpan>;

    fn observe<B>(&self, request: &mut http::Request<B>) -> Option<CallSpan> {
        if !is_traced(request.uri().path()) {
            return None;
        }
        let span = call_span(request, Side::Client);
        // The span's context, or (nothing exported) the current one: a call
        // made while serving a traced caller passes the caller's trace on.
        inject_context(&find_context_from_tracing(&span), request.headers_mut());
        CallSpan::new(span, Side::Client, None, None)
    }
}
