//! A call's span from its request to its gRPC status, wherever that status
//! turns up ([`crate::outcome`] reads it once for every observer).
//!
//! Who owns the span when: the layer opens it and lends it to the inner
//! service while that builds the response future; the response future owns
//! it while the response head is awaited; then it moves into the response
//! body, which hyper polls frame by frame until the trailers. The span ends
//! when its last owner drops it, so a streaming call's span is exactly as
//! long as the stream.

use http::{HeaderMap, HeaderValue};
use opentelemetry::ContextGuard;
use opentelemetry::trace::TraceContextExt;
use tonic::Code;
use tracing::{Span, field::Empty, span::Entered};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_opentelemetry_instrumentation_sdk::{
    TRACING_LEVEL, TRACING_TARGET,
    http::{grpc::status_is_error, http_host_port, user_agent},
};

use super::TRACE_ID_HEADER;
use crate::outcome::{CallObserver, Outcome};

/// Which side of a call a span describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Server,
    Client,
}

impl Side {
    /// The span kind, as the OpenTelemetry layer reads `otel.kind`.
    fn kind(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }

    /// Whether `code` marks the span as failed, by the RPC conventions: a
    /// client failed whenever it did not get OK; a server only when the
    /// fault is its own (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
    /// INTERNAL, UNAVAILABLE, DATA_LOSS).
    fn is_error(self, code: Code) -> bool {
        // Codes are 0..=16.
        status_is_error(code as u16, self == Side::Server)
    }
}

/// The span of the call `request` makes, on `side`: the attributes of
/// `tracing-opentelemetry-instrumentation-sdk`'s gRPC spans (the RPC
/// semantic conventions), under the same target and level, but each one
/// recorded as the `&str` or number it already is: the crate's spans
/// format most of them (`%service`, `format!` for the name), which the
/// OpenTelemetry layer then formats again, on every call. The request is a
/// traced gRPC call (`is_traced`), so its path is `/service/method`.
pub(super) fn call_span<B>(request: &http::Request<B>, side: Side) -> Span {
    let path = request.uri().path();
    let name = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    let (address, port) = http_host_port(request);
    tracing::span!(
        target: TRACING_TARGET,
        TRACING_LEVEL,
        "GRPC request",
        http.user_agent = user_agent(request),
        otel.name = name,
        otel.kind = side.kind(),
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        server.address = address,
        server.port = port,
        exception.message = Empty,
        exception.details = Empty,
    )
}

/// A call's span until its status is known, and (on a server) the trace
/// id to answer with.
#[derive(Debug)]
pub struct CallSpan {
    span: Span,
    side: Side,
    /// The caller's context when `span` cannot carry it (no OpenTelemetry
    /// layer: nothing is exported). Made current while the call runs, so
    /// logs and onward calls still name the caller's trace.
    fallback: Option<opentelemetry::Context>,
    /// Sent back in `x-trace-id` with the response head.
    trace_id: Option<HeaderValue>,
}

/// While a call runs: its span entered and, without export, the caller's
/// context current. Fields drop in order: the span is left first.
pub struct InCall<'a> {
    _entered: Entered<'a>,
    _context: Option<ContextGuard>,
}

impl CallSpan {
    /// The call's span, or `None` when there is nothing to record or make
    /// current (a disabled span and no caller context).
    pub(super) fn new(
        span: Span,
        side: Side,
        fallback: Option<opentelemetry::Context>,
        trace_id: Option<HeaderValue>,
    ) -> Option<Self> {
        (!span.is_disabled() || fallback.is_some()).then_some(CallSpan {
            span,
            side,
            fallback,
            trace_id,
        })
    }
}

impl CallSpan {
    /// The trace id of this call's span if the span is sampled, so sent to
    /// the collector: the one a metric's exemplar may name, since it leads
    /// to a trace that exists. `None` when nothing is exported.
    pub fn exported_trace_id(&self) -> Option<String> {
        let context = self.span.context();
        let span_context = context.span().span_context().clone();
        (span_context.is_valid() && span_context.is_sampled())
            .then(|| span_context.trace_id().to_string())
    }
}

impl CallObserver for CallSpan {
    fn enter(&self) -> Option<InCall<'_>> {
        // The context first, so the span (when it exists) nests inside it.
        let context = self.fallback.clone().map(opentelemetry::Context::attach);
        Some(InCall {
            _entered: self.span.enter(),
            _context: context,
        })
    }

    fn respond(&mut self, headers: &mut HeaderMap) {
        if let Some(trace_id) = self.trace_id.take() {
            headers.insert(TRACE_ID_HEADER, trace_id);
        }
    }

    fn finish(self, outcome: Outcome<'_>) {
        self.span
            .record("rpc.grpc.status_code", outcome.code as i32);
        if self.side.is_error(outcome.code) {
            self.span.record("otel.status_code", "ERROR");
            // The span has no `otel.status_description` field; the status
            // message goes where the crate puts a failed call's reason.
            let message = outcome.message();
            if !message.is_empty() {
                self.span.record("exception.message", &*message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_fail_only_on_their_own_faults() {
        assert!(!Side::Server.is_error(Code::NotFound));
        assert!(!Side::Server.is_error(Code::Cancelled));
        assert!(Side::Server.is_error(Code::Internal));
        assert!(Side::Server.is_error(Code::Unavailable));
        assert!(Side::Client.is_error(Code::NotFound));
        assert!(Side::Client.is_error(Code::Cancelled));
        assert!(!Side::Client.is_error(Code::Ok));
    }
}
