//! `wire` against the upstream conversion it replaces: the same spans,
//! encoded both ways, must decode to the same request and be the same bytes.

use std::time::{Duration, SystemTime};

use opentelemetry::{
    Array, InstrumentationScope, KeyValue, StringValue, Value,
    trace::{Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_proto::{
    tonic::collector::trace::v1::ExportTraceServiceRequest,
    transform::{
        common::tonic::ResourceAttributesWithSchema,
        trace::tonic::group_spans_by_resource_and_scope,
    },
};
use opentelemetry_sdk::{
    Resource,
    trace::{SpanData, SpanEvents, SpanLinks},
};
use prost::Message;

use super::*;

/// Every kind of value an attribute can hold, at and away from its
/// default (a oneof's field is written even at its default).
fn attributes() -> Vec<KeyValue> {
    vec![
        KeyValue::new("rpc.method", "OrderCoffee"),
        KeyValue::new("empty", ""),
        KeyValue::new("served", true),
        KeyValue::new("refused", false),
        KeyValue::new("ticket", 42_i64),
        KeyValue::new("zero", 0_i64),
        KeyValue::new("negative", -7_i64),
        KeyValue::new("ratio", 0.25_f64),
        KeyValue::new("flags", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("numbers", Value::Array(Array::I64(vec![0, -1, 300]))),
        KeyValue::new("floats", Value::Array(Array::F64(vec![1.5, 0.0]))),
        KeyValue::new(
            "names",
            Value::Array(Array::String(vec![StringValue::from("a"), "".into()])),
        ),
        KeyValue::new("no items", Value::Array(Array::I64(vec![]))),
        KeyValue::new("", "a value with no key"),
    ]
}

fn context(trace: u128, span: u64, remote: bool, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::SAMPLED,
        remote,
        state,
    )
}

fn span(name: &'static str, scope: &InstrumentationScope, n: u64) -> SpanData {
    SpanData {
        span_context: context(0xabc + u128::from(n), n + 1, false, TraceState::NONE),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.into(),
        start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
        end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_001_000_000_000),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

/// Spans that use every field, in two scopes that alternate, and spans
/// that leave every field at its default.
fn spans() -> Vec<SpanData> {
    let cafe = InstrumentationScope::builder("cafe").build();
    let other = InstrumentationScope::builder("other")
        .with_version("1.2.3")
        .with_schema_url("https://opentelemetry.io/schemas/1.0.0")
        .with_attributes([KeyValue::new("scope.attr", 1_i64)])
        .build();

    let mut full = span("OrderCoffee", &cafe, 1);
    full.span_context = context(
        u128::MAX - 5,
        u64::MAX - 5,
        false,
        TraceState::from_key_value([("cafe", "1"), ("vendor", "x")]).unwrap(),
    );
    full.parent_span_id = SpanId::from(99);
    full.parent_span_is_remote = true;
    full.span_kind = SpanKind::Server;
    full.attributes = attributes();
    full.dropped_attributes_count = 3;
    full.events.events.push(Event::new(
        "exception",
        SystemTime::UNIX_EPOCH + Duration::from_secs(5),
        attributes(),
        2,
    ));
    full.events.events.push(Event::with_name(""));
    full.events.dropped_count = 4;
    full.links.links.push(Link::new(
        context(
            7,
            8,
            true,
            TraceState::from_key_value([("k", "v")]).unwrap(),
        ),
        attributes(),
        1,
    ));
    full.links
        .links
        .push(Link::with_context(context(9, 10, false, TraceState::NONE)));
    full.links.dropped_count = 5;
    full.status = Status::error("the barista went away");

    let mut client = span("brew", &other, 2);
    client.span_kind = SpanKind::Client;
    client.status = Status::Ok;
    let mut producer = span("", &cafe, 3);
    producer.span_kind = SpanKind::Producer;
    producer.start_time = SystemTime::UNIX_EPOCH;
    producer.end_time = SystemTime::UNIX_EPOCH;
    let mut consumer = span("queue.wait", &other, 4);
    consumer.span_kind = SpanKind::Consumer;
    consumer.status = Status::error("");
    vec![full, client, producer, consumer, span("brewing", &cafe, 5)]
}

fn encoded(resource: &Resource, spans: &[SpanData]) -> ExportTraceServiceRequest {
    let mut out = vec![0xff; 3];
    encode_request(&Process::new(resource), spans, &mut out);
    ExportTraceServiceRequest::decode(out.as_slice()).expect("a well-formed request")
}

fn upstream(resource: &Resource, spans: &[SpanData]) -> ExportTraceServiceRequest {
    let resource: ResourceAttributesWithSchema = resource.into();
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(spans.to_vec(), &resource),
    }
}

#[test]
fn a_request_is_the_one_the_upstream_conversion_builds() {
    let resource = Resource::builder_empty()
        .with_service_name("cafe")
        .with_schema_url(
            [KeyValue::new("host.name", "counter-1")],
            "https://opentelemetry.io/schemas/1.2.0",
        )
        .build();
    let spans = spans();
    let ours = encoded(&resource, &spans);
    let theirs = upstream(&resource, &spans);
    // Compared whole, and by span for a readable failure.
    for (ours, theirs) in ours.resource_spans[0]
        .scope_spans
        .iter()
        .zip(&theirs.resource_spans[0].scope_spans)
    {
        assert_eq!(ours.scope, theirs.scope);
        for (ours, theirs) in ours.spans.iter().zip(&theirs.spans) {
            assert_eq!(ours, theirs);
        }
    }
    assert_eq!(ours, theirs);
    // The same bytes prost writes for it, to the byte.
    let mut out = Vec::new();
    encode_request(&Process::new(&resource), &spans, &mut out);
    assert_eq!(out, theirs.encode_to_vec());
}

#[test]
fn an_empty_resource_and_an_empty_batch_are_encoded_too() {
    let resource = Resource::builder_empty().build();
    assert_eq!(encoded(&resource, &[]), upstream(&resource, &[]));
    let one = &spans()[1..2];
    assert_eq!(encoded(&resource, one), upstream(&resource, one));
}
