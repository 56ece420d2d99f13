//! The server's side of a call: the caller's context read from the request,
//! the server span opened under it, and the trace id sent back.

use http::HeaderValue;
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_opentelemetry_instrumentation_sdk::{http::extract_context, set_parent_or_fallback};

use super::{
    call::{CallSpan, Side, call_span},
    is_traced,
};
use crate::outcome::{MakeObserver, Observe};

/// Server side: reads the caller's trace context and runs each call in a
/// server span, answering with the trace id in `x-trace-id`. A server
/// watches its calls with it through [`Observe`], alone
/// (`Observe::new(routes, ServerTracing)`) or beside other observers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTracing;

/// A service whose calls are traced as a server's.
pub type GrpcServerTrace<S> = Observe<S, ServerTracing>;

impl MakeObserver for ServerTracing {
    type Observer = Option<CallSpan>;

    fn observe<B>(&self, request: &mut http::Request<B>) -> Option<CallSpan> {
        if !is_traced(request.uri().path()) {
            return None;
        }
        let span = call_span(request, Side::Server);
        // Must happen before anything else looks at the span: once started,
        // a span's parent is fixed. When the span cannot take the parent
        // (nothing is exported), the caller's context comes back, to be made
        // current while the call runs instead; an empty one is not worth it.
        let caller = extract_context(request.headers());
        let fallback = set_parent_or_fallback(&span, caller)
            .filter(|context| context.span().span_context().is_valid());
        let trace_id = trace_id_header(&span, fallback.as_ref());
        CallSpan::new(span, Side::Server, fallback, trace_id)
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
