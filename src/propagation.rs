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
//! Both ends are tower layers, so no handler has to think about it:
//! - [`GrpcServerTraceLayer`], for `Server::builder().layer(...)`: reads the
//!   caller's context, opens the server span (named
//!   `cafe.v1.Cafe/OrderCoffee`, with the OpenTelemetry RPC attributes), runs
//!   the handler inside it, and answers with the trace id in `x-trace-id`.
//! - [`GrpcClientTraceLayer`] (or [`traced`]), around a client's `Channel`:
//!   opens the client span as a child of the current span and sends it on.
//!
//! # What is borrowed and what is ours
//!
//! The span itself and the header work come from
//! `tracing-opentelemetry-instrumentation-sdk`, the core of the
//! `tonic-tracing-opentelemetry` middleware: it builds the span with the RPC
//! semantic conventions (`rpc.system`, `rpc.service`, `rpc.method`,
//! `server.address`, …), reads and writes `traceparent` through
//! OpenTelemetry's global propagator ([`propagator`], installed by
//! [`crate::telemetry`]), and knows which status codes are the server's
//! fault. What our layers add (in `call`, `server` and `client` below):
//! - **A call ends with its trailers, not its headers.** A server-streaming
//!   call (a buzzer, the board) goes on until its last message, and its
//!   status arrives in the HTTP/2 *trailers*. So the span travels inside the
//!   response body ([`TracedBody`]) and closes when the trailers pass by,
//!   recording `rpc.grpc.status_code`; a body dropped before its trailers is
//!   a cancelled call. No span is left open forever.
//! - **Each side judges failure by its own rule.** A client failed whenever
//!   it did not get OK; a server only when the fault is its own (NOT_FOUND is
//!   the server doing its job).
//! - **Health checks and reflection are not traced, on either side**: a load
//!   balancer probing every second would bury the interesting traces.
//! - **`x-trace-id`** on every traced response, so a caller without a trace
//!   backend of its own can still find the call's trace.
//!
//! Why not `tonic-tracing-opentelemetry`'s own layers (`OtelGrpcLayer`,
//! server and client)? Run against `tests/tracing.rs` (version 0.42.1, with
//! its health-check filter), they failed four assertions: a buzzer's server
//! span lasted 33 ms and ended 202 ms before the stream did (it ends at the
//! response headers); a board watcher who hung up was recorded as status 0
//! and OK on both sides instead of CANCELLED (1), an error for the client;
//! a NOT_FOUND was OK for the client (its client layer applies the server's
//! rule); and a health check through a traced channel left a client span
//! (its client layer has no filter). No layer on top can mend the first two:
//! those layers mark the span OK when the headers arrive, and OpenTelemetry
//! treats OK as final.
//!
//! # Without export
//!
//! The spans are at `TRACE` level with the target `otel::tracing` (the
//! crate's convention): the OpenTelemetry layer lets them through, and
//! `RUST_LOG=info` logs do not show them. When nothing is exported, that
//! layer is not installed (see [`crate::telemetry`]), a call's span is
//! disabled (unless `RUST_LOG` asks for `trace`), and tracing a call costs
//! a header lookup. The caller's context
//! is still honoured: while the call runs it is OpenTelemetry's *current*
//! context, so the JSON logs name the caller's trace, calls made from the
//! handler pass it on, and `x-trace-id` echoes the caller's trace id. A call
//! with no `traceparent` gets no `x-trace-id`: with no trace backend there
//! is no trace to point to. (Work that another task picks up later, such as
//! a remote barista's `Brew`, does not carry it: [`join_trace`] needs the
//! layer.)

mod call;
mod client;
mod server;

pub use call::{TracedBody, TracedResponse};
pub use client::{GrpcClientTrace, GrpcClientTraceLayer, traced};
pub use server::{GrpcServerTrace, GrpcServerTraceLayer};

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The response header (metadata) in which a traced server returns the
/// call's trace id, e.g. `4bf92f3577b34da6a3ce929d0e0e4736`.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// The propagators both layers use: W3C `traceparent`/`tracestate` and W3C
/// `baggage`. Installed as OpenTelemetry's global propagator by
/// [`crate::telemetry::init`] (and `build`), which the layers read.
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// The trace id a traced server returned in `x-trace-id`, if any.
pub fn trace_id_from(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get(TRACE_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The current trace context, to keep with work that another task picks up
/// later (an order waiting in line for a remote barista) so that the work
/// joins the same trace. Holding it does not keep the span open, unlike
/// holding the `Span` itself. Without export it is the caller's context,
/// if the call being served came with one.
pub fn current_context() -> opentelemetry::Context {
    tracing_opentelemetry_instrumentation_sdk::find_current_context()
}

/// Makes `span` a child of `context` (from [`current_context`]) rather than
/// of the current span. Call it before the span is first entered; without
/// export it does nothing.
pub fn join_trace(span: &Span, context: opentelemetry::Context) {
    let _ = span.set_parent(context);
}

/// Whether a call to `path` (`/cafe.v1.Cafe/OrderCoffee`) gets a span: gRPC
/// calls, except health checks and reflection.
fn is_traced(path: &str) -> bool {
    let Some((service, method)) = path.strip_prefix('/').and_then(|path| path.split_once('/'))
    else {
        return false;
    };
    !service.is_empty()
        && !method.is_empty()
        && !service.starts_with("grpc.health.")
        && !service.starts_with("grpc.reflection.")
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use opentelemetry::trace::TraceContextExt;
    use tower::{Layer, Service, ServiceExt};
    use tracing_opentelemetry_instrumentation_sdk::http::{extract_context, inject_context};

    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_real_calls_are_traced() {
        assert!(is_traced("/cafe.v1.Cafe/OrderCoffee"));
        assert!(!is_traced("/grpc.health.v1.Health/Check"));
        assert!(!is_traced(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_traced("/not-grpc"));
        assert!(!is_traced("/"));
    }

    #[test]
    fn context_round_trips_through_headers() {
        opentelemetry::global::set_text_map_propagator(propagator());
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static(CALLER));
        let context = extract_context(&headers);
        let mut out = http::HeaderMap::new();
        inject_context(&context, &mut out);
        assert_eq!(out.get("traceparent"), headers.get("traceparent"));
    }

    /// A server whose handler says (in a `seen` header) the trace id of the
    /// OpenTelemetry context it ran in.
    async fn serve_once(request: http::Request<()>) -> http::Response<TracedBody<String>> {
        let handler = tower::service_fn(|_request: http::Request<()>| async {
            let context = opentelemetry::Context::current();
            let trace_id = context.span().span_context().trace_id().to_string();
            let response = http::Response::builder()
                .header("seen", trace_id)
                .body(String::new())
                .unwrap();
            Ok::<_, Infallible>(response)
        });
        let mut server = GrpcServerTraceLayer.layer(handler);
        server.ready().await.unwrap().call(request).await.unwrap()
    }

    #[tokio::test]
    async fn without_export_the_callers_trace_id_is_echoed_and_current() {
        // No subscriber and no OpenTelemetry layer here: as a server that
        // does not export.
        opentelemetry::global::set_text_map_propagator(propagator());
        let request = http::Request::builder()
            .uri("/cafe.v1.Cafe/OrderCoffee")
            .header("traceparent", CALLER)
            .body(())
            .unwrap();
        let response = serve_once(request).await;
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            response.headers().get(TRACE_ID_HEADER).unwrap(),
            caller_trace
        );
        assert_eq!(
            response.headers().get("seen").unwrap(),
            caller_trace,
            "the handler runs in the caller's trace"
        );
    }

    #[tokio::test]
    async fn without_export_and_without_a_caller_there_is_no_trace_id() {
        opentelemetry::global::set_text_map_propagator(propagator());
        let request = http::Request::builder()
            .uri("/cafe.v1.Cafe/OrderCoffee")
            .body(())
            .unwrap();
        let response = serve_once(request).await;
        assert!(response.headers().get(TRACE_ID_HEADER).is_none());
        assert_eq!(
            response.headers().get("seen").unwrap(),
            "00000000000000000000000000000000"
        );
    }
}
