//! One trace from the client through the café to the barista: the W3C
//! trace context carried in gRPC metadata, and a span for every call.
//!
//! The caller writes its span's identity into the request's headers
//! (`traceparent`, plus `tracestate` and `baggage`), and the server reads it
//! back and makes its span a child of the caller's. gRPC metadata *is*
//! HTTP/2 headers, so this is the W3C Trace Context that HTTP services use.
//! Both ends are call observers ([`crate::outcome`]), so no handler has to
//! think about it:
//! - [`ServerTracing`]: reads the caller's context, opens the server span
//!   (the OpenTelemetry RPC attributes), runs the handler inside it, and
//!   answers with the trace id in `x-trace-id`.
//! - [`traced`] ([`ClientTracing`]), around a client's `Channel`: opens the
//!   client span as a child of the current span and sends it on.
//!
//! The header work and the span's attributes come from
//! `tracing-opentelemetry-instrumentation-sdk`; what is ours: a call ends
//! with its trailers, not its headers (a dropped body is `CANCELLED`); each
//! side judges failure by its own rule; health checks and reflection are
//! not traced; `x-trace-id` on every traced response; the attributes
//! recorded as the strings they are, not formatted. A handler needs no
//! span of its own, over the same time: it runs in its call's span and can
//! write what it learns onto it (the café's do). Why not that crate's
//! own layers, and what happens without export: `docs/tracing.md`, "How
//! calls are traced".
//!
//! The spans are at `TRACE` level with the target `otel::tracing`: the
//! OpenTelemetry layer lets them through, `RUST_LOG=info` logs do not show
//! them. Without export, the caller's context is still made current while
//! the call runs, so logs and onward calls name the caller's trace.

mod call;
mod client;
mod server;

pub use call::{CallSpan, InCall};
pub use client::{ClientTracing, GrpcClientTrace, traced};
pub use server::{GrpcServerTrace, ServerTracing};

use futures::future::Either;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::{context::FutureExt as _, trace::TraceContextExt as _};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan as _;

/// The response header (metadata) in which a traced server returns the
/// call's trace id, e.g. `4bf92f3577b34da6a3ce929d0e0e4736`.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// The propagators both layers use: W3C `traceparent`/`tracestate` and W3C
/// `baggage`. Installed as OpenTelemetry's global propagator by
/// [`crate::init`] (and `build`), which the layers read.
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
    // Asked of the spans themselves, innermost first (one the OpenTelemetry
    // layer does not see, such as a `debug` span the console takes, has no
    // context of its own): the layer does not make a span's context current
    // while it is entered (see `crate::build`).
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>();
        let current = dispatch.current_span();
        if let (Some(registry), Some(id)) = (registry, current.id())
            && let Some(span) = registry.span(id)
        {
            for span in span.scope() {
                if let Some(context) = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
                    && context.span().span_context().is_valid()
                {
                    return context;
                }
            }
        }
        // No span with a context: the caller's, made current while a call
        // is served without export (`CallSpan`), if any.
        opentelemetry::Context::current()
    })
}

/// `span`'s trace context, to keep with work that outlives it (as
/// [`current_context`] is for the current span): the span's own with
/// export; without, the span has none, and the caller's context current
/// while a call is served stands in for it, so work picked up later still
/// names the caller's trace in its log lines.
pub fn context_of(span: &Span) -> opentelemetry::Context {
    let own = span.context();
    if own.span().span_context().is_valid() {
        own
    } else {
        opentelemetry::Context::current()
    }
}

/// Makes `span` a child of `context` (from [`current_context`]) rather than
/// of the current span. Call it before the span is first entered; without
/// export it does nothing.
pub fn join_trace(span: &Span, context: opentelemetry::Context) {
    let _ = span.set_parent(context);
}

/// Runs `work` in `span`, joined to the trace of `context` (from
/// [`current_context`]). With export the span becomes the context's child
/// ([`join_trace`]); without, the span cannot carry it, so `context` itself
/// is made current around each poll of `work`: the lines it logs still name
/// the trace, as a served call's lines name their caller's.
///
/// A plain function returning the wrapped future, not an `async fn`: that
/// would keep `work` twice (as its argument, and as awaited), and a barista
/// keeps its brew's future for the whole brew.
pub fn in_trace<F: Future>(
    span: Span,
    context: opentelemetry::Context,
    work: F,
) -> impl Future<Output = F::Output> {
    match tracing_opentelemetry_instrumentation_sdk::set_parent_or_fallback(&span, context) {
        None => Either::Left(work.instrument(span)),
        Some(fallback) => Either::Right(work.instrument(span).with_context(fallback)),
    }
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
    use tower::{Service, ServiceExt};
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
    async fn serve_once(
        request: http::Request<()>,
    ) -> http::Response<crate::outcome::ObservedBody<String, Option<CallSpan>>> {
        let handler = tower::service_fn(|_request: http::Request<()>| async {
            let context = opentelemetry::Context::current();
            let trace_id = context.span().span_context().trace_id().to_string();
            let response = http::Response::builder()
                .header("seen", trace_id)
                .body(String::new())
                .unwrap();
            Ok::<_, Infallible>(response)
        });
        let mut server = crate::outcome::Observe::new(handler, ServerTracing);
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
