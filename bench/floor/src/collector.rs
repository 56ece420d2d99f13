//! An OTLP/gRPC trace sink for the tracing-on benchmark: it accepts every
//! `Export` at once and keeps nothing but a count of the spans, so the
//! exporting café never waits on it. The spans it counted, beside the ones
//! the café says it dropped, tell whether every span survived the load.
//!
//! **It decodes only what counting needs.** The sink shares the machine's
//! two cores with the café it measures, so every cycle it spends is taken
//! from the café. Decoding a request into `opentelemetry-proto`'s types
//! builds every span: its name, ids and each attribute as owned strings and
//! vectors, only to be thrown away. Here the request is read as a
//! `SpanTally`: messages that know the path to the spans (`resource_spans`
//! → `scope_spans` → `spans`) and nothing else, so each span's own fields,
//! and everything beside the spans (the resource, the scope), are stepped
//! over unread, as unknown fields are. The count is exact (one per span on
//! the wire, an empty span included); what the sink no longer does is check
//! that a span is well formed inside (its fields' keys and lengths still
//! are). Its answer is the real `ExportTraceServiceResponse`.
//!
//! **Or it keeps the trace ids** ([`SpanCounter::keeping_trace_ids`]), for
//! `deploy/prometheus/check-live`, which asks whether the trace an
//! exemplar names was really received: then each span's `trace_id` is read
//! too, and nothing else. The benchmark never asks for it.

use std::{
    collections::BTreeSet,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::{Request, Response, Status, body::Body, server::NamedService};

/// The sink's counts; clones share them.
#[derive(Debug, Clone, Default)]
pub struct SpanCounter {
    spans: Arc<AtomicU64>,
    exports: Arc<AtomicU64>,
    /// The distinct trace ids seen (hex), if asked to keep them. A std
    /// mutex: held for one insert, never across `.await`.
    trace_ids: Option<Arc<Mutex<BTreeSet<String>>>>,
}

impl SpanCounter {
    /// A counter that also keeps every trace id it sees.
    pub fn keeping_trace_ids() -> Self {
        SpanCounter {
            trace_ids: Some(Arc::default()),
            ..SpanCounter::default()
        }
    }

    /// The trace ids seen so far, in hex, if kept.
    pub fn trace_ids(&self) -> Option<Vec<String>> {
        let ids = self.trace_ids.as_ref()?;
        let ids = ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(ids.iter().cloned().collect())
    }

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    /// Export calls received so far.
    pub fn exports(&self) -> u64 {
        self.exports.load(Ordering::Relaxed)
    }

    /// The gRPC service that counts into this counter: OTLP's
    /// `TraceService`, accepting requests up to `max_message_size` bytes.
    pub fn service(&self, max_message_size: usize) -> CountingTraceService {
        CountingTraceService {
            counter: self.clone(),
            max_message_size,
        }
    }
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`, counting spans:
/// what `opentelemetry-proto`'s generated `TraceServiceServer` does, with a
/// codec that decodes requests as a `SpanTally` instead of building them.
#[derive(Debug, Clone)]
pub struct CountingTraceService {
    counter: SpanCounter,
    max_message_size: usize,
}

impl NamedService for CountingTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// The one method's path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl<B> tower::Service<http::Request<B>> for CountingTraceService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let max_message_size = self.max_message_size;
        if self.counter.trace_ids.is_some() {
            let export = Export(self.counter.clone());
            return Box::pin(async move {
                let codec =
                    tonic_prost::ProstCodec::<ExportTraceServiceResponse, TraceIdTally>::default();
                let mut grpc = tonic::server::Grpc::new(codec)
                    .apply_max_message_size_config(Some(max_message_size), None);
                Ok(grpc.unary(export, request).await)
            });
        }
        let export = Export(self.counter.clone());
        Box::pin(async move {
            // Requests decode as a tally; the answer encodes as OTLP's own.
            let codec = tonic_prost::ProstCodec::<ExportTraceServiceResponse, SpanTally>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(max_message_size), None);
            Ok(grpc.unary(export, request).await)
        })
    }
}

/// The `Export` method: adds a request's tally to the counts.
struct Export(SpanCounter);

impl tonic::server::UnaryService<SpanTally> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<Response<ExportTraceServiceResponse>, Status>>;

    fn call(&mut self, request: Request<SpanTally>) -> Self::Future {
        let counter = &self.0;
        counter
            .spans
            .fetch_add(request.get_ref().spans(), Ordering::Relaxed);
        counter.exports.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Response::new(ExportTraceServiceResponse::default())))
    }
}

impl tonic::server::UnaryService<TraceIdTally> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<Response<ExportTraceServiceResponse>, Status>>;

    fn call(&mut self, request: Request<TraceIdTally>) -> Self::Future {
        let counter = &self.0;
        let spans = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans);
        let mut count = 0;
        if let Some(ids) = &counter.trace_ids {
            let mut ids = ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for span in spans {
                count += 1;
                ids.insert(span.trace_id.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
        counter.spans.fetch_add(count, Ordering::Relaxed);
        counter.exports.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Response::new(ExportTraceServiceResponse::default())))
    }
}

/// An `ExportTraceServiceRequest` read as far as each span's trace id.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceIdTally {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceIds>,
}

/// `ResourceSpans`, read as far as its `scope_spans`.
#[derive(Clone, PartialEq, prost::Message)]
struct ResourceIds {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeIds>,
}

/// `ScopeSpans`, read as far as its `spans`.
#[derive(Clone, PartialEq, prost::Message)]
struct ScopeIds {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<SpanTraceId>,
}

/// A `Span`'s `trace_id` (field 1), its other fields skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct SpanTraceId {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
}

/// An `ExportTraceServiceRequest` read only as far as its spans: the
/// three messages on the way to them, with only the field that leads on
/// (the field numbers of `trace.proto`). Any other field is skipped by
/// prost as an unknown one, its bytes never looked at.
#[derive(Clone, PartialEq, prost::Message)]
struct SpanTally {
    /// `ExportTraceServiceRequest.resource_spans`.
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceTally>,
}

/// `ResourceSpans`, read as far as its `scope_spans`.
#[derive(Clone, PartialEq, prost::Message)]
struct ResourceTally {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeTally>,
}

/// `ScopeSpans`, read as far as its `spans`.
#[derive(Clone, PartialEq, prost::Message)]
struct ScopeTally {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<UnreadSpan>,
}

/// A `Span` with no fields: each of the span's own fields is skipped (a
/// key read, its length stepped over), nothing is copied, and, being of
/// size zero, a vector of them never allocates.
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct UnreadSpan {}

impl SpanTally {
    /// Spans in the request.
    fn spans(&self) -> u64 {
        self.resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value},
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };
    use prost::Message;

    fn span(name: &str) -> Span {
        Span {
            name: name.into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: vec![KeyValue {
                key: "order.id".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("ord-1".into())),
                }),
                ..KeyValue::default()
            }],
            ..Span::default()
        }
    }

    /// A request of two spans, "a" and "b", of one trace.
    fn two_spans() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span("a"), span("b")],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn every_span_of_every_scope_and_resource_is_counted() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![
                        ScopeSpans {
                            spans: vec![span("a"), Span::default(), span("c")],
                            ..ScopeSpans::default()
                        },
                        ScopeSpans {
                            spans: vec![span("d")],
                            ..ScopeSpans::default()
                        },
                    ],
                    schema_url: "https://opentelemetry.io/schemas/1.0".into(),
                    ..ResourceSpans::default()
                },
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span("e"), span("f")],
                        ..ScopeSpans::default()
                    }],
                    ..ResourceSpans::default()
                },
            ],
        };
        let tally = SpanTally::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(tally.spans(), 6);
    }

    #[test]
    fn trace_ids_are_kept_when_asked_for() {
        let request = two_spans();
        let tally = TraceIdTally::decode(request.encode_to_vec().as_slice()).unwrap();
        let counter = SpanCounter::keeping_trace_ids();
        use tonic::server::UnaryService;
        drop(Export(counter.clone()).call(Request::new(tally)));
        assert_eq!(counter.spans(), 2);
        assert_eq!(counter.trace_ids().unwrap(), ["01".repeat(16)]);
        assert_eq!(SpanCounter::default().trace_ids(), None);
    }

    #[test]
    fn a_cut_request_is_refused_not_miscounted() {
        let request = two_spans();
        let bytes = request.encode_to_vec();
        assert!(SpanTally::decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
