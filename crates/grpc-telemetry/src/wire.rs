//! OTLP's `ExportTraceServiceRequest`, written straight from the SDK's
//! finished spans into the bytes that go on the wire.
//!
//! `opentelemetry-otlp`'s exporter makes the same bytes in three steps: it
//! copies each batch (to keep it for a retry), converts every span into
//! `opentelemetry-proto`'s owned messages (a `String` for each name, key and
//! value), and has prost encode those, which asks each nested message its
//! length again at every level above it; then it drops them. Flat out that
//! was the largest part of what exporting costs the café
//! (`docs/performance.md`, "Tracing saturated"). Here each span is read
//! where it lies, nothing copied or converted: measured once, then written;
//! the small messages inside it (attributes, events, links) are measured
//! again as they are written, as prost does.
//!
//! The request is exactly the one the upstream conversion builds, field for
//! field (the tests decode both with `opentelemetry-proto`'s types and
//! compare): one `ResourceSpans`, one `ScopeSpans` per instrumentation
//! scope in the order the scopes first appear, and each span's fields with
//! prost's rules (a scalar at its default is left out; `status`, a
//! resource and a scope are always written).

use bytes::BufMut;
use opentelemetry::{
    Array, InstrumentationScope, KeyValue, Value,
    trace::{Event, Link, SpanContext, SpanId, SpanKind, Status},
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// The part of every request that describes the process, encoded once
/// (the SDK hands it to the exporter when the provider is built).
#[derive(Debug, Clone, Default)]
pub(super) struct Process {
    /// The `Resource` message's fields: its attributes.
    resource: Vec<u8>,
    schema_url: String,
}

impl Process {
    pub(super) fn new(resource: &Resource) -> Self {
        let mut encoded = Vec::new();
        for (key, value) in resource.iter() {
            put_len(&mut encoded, 1, key_value_len(key.as_str(), value));
            put_key_value(&mut encoded, key.as_str(), value);
        }
        Process {
            resource: encoded,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }
}

/// Encodes one export request for `spans` into `out` (which it clears).
pub(super) fn encode_request(process: &Process, spans: &[SpanData], out: &mut Vec<u8>) {
    // The spans of each scope, in the order the scopes first appear. A
    // process has one scope or a few: a short list beats a map.
    let mut scopes: Vec<(&InstrumentationScope, Vec<(usize, &SpanData)>)> = Vec::new();
    for span in spans {
        let scope = &span.instrumentation_scope;
        let len = span_len(span);
        match scopes.iter_mut().find(|(seen, _)| *seen == scope) {
            Some((_, members)) => members.push((len, span)),
            None => scopes.push((scope, vec![(len, span)])),
        }
    }

    let scope_spans_lens: Vec<usize> = scopes
        .iter()
        .map(|(scope, members)| {
            len_field(1, scope_len(scope))
                + members
                    .iter()
                    .map(|(len, _)| len_field(2, *len))
                    .sum::<usize>()
                + str_len(3, scope.schema_url().unwrap_or_default())
        })
        .collect();
    let resource_spans_len = len_field(1, process.resource.len())
        + scope_spans_lens
            .iter()
            .map(|len| len_field(2, *len))
            .sum::<usize>()
        + str_len(3, &process.schema_url);

    out.clear();
    out.reserve(len_field(1, resource_spans_len));
    // ExportTraceServiceRequest.resource_spans (1): the one ResourceSpans.
    put_len(out, 1, resource_spans_len);
    put_len(out, 1, process.resource.len());
    out.put_slice(&process.resource);
    for ((scope, members), len) in scopes.iter().zip(scope_spans_lens) {
        put_len(out, 2, len);
        put_len(out, 1, scope_len(scope));
        put_scope(out, scope);
        for (len, span) in members {
            put_len(out, 2, *len);
            put_span(out, span);
        }
        put_str(out, 3, scope.schema_url().unwrap_or_default());
    }
    put_str(out, 3, &process.schema_url);
}

// ------------------------------------------------------------ the messages
// Each `*_len` is the length of a message's fields; its `put_*` writes
// them. A message inside another is written as its key, its length, then
// its fields (`len_field`, `put_len`).

fn scope_len(scope: &InstrumentationScope) -> usize {
    str_len(1, scope.name())
        + str_len(2, scope.version().unwrap_or_default())
        + scope
            .attributes()
            .map(|kv| len_field(3, key_value_len(kv.key.as_str(), &kv.value)))
            .sum::<usize>()
}

fn put_scope(out: &mut Vec<u8>, scope: &InstrumentationScope) {
    put_str(out, 1, scope.name());
    put_str(out, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        put_len(out, 3, key_value_len(kv.key.as_str(), &kv.value));
        put_key_value(out, kv.key.as_str(), &kv.value);
    }
}

fn span_len(span: &SpanData) -> usize {
    let context = &span.span_context;
    len_field(1, 16)
        + len_field(2, 8)
        + str_len(3, &context.trace_state().header())
        + if span.parent_span_id == SpanId::INVALID {
            0
        } else {
            len_field(4, 8)
        }
        + key_len(16)
        + 4
        + str_len(5, &span.name)
        + uint_len(6, kind(&span.span_kind))
        + fixed64_len(7, nanos(span.start_time))
        + fixed64_len(8, nanos(span.end_time))
        + attributes_len(9, &span.attributes)
        + uint_len(10, span.dropped_attributes_count.into())
        + repeated_len(11, &span.events, event_len)
        + uint_len(12, span.events.dropped_count.into())
        + repeated_len(13, &span.links, link_len)
        + uint_len(14, span.links.dropped_count.into())
        + len_field(15, status_len(&span.status))
}

fn put_span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    put_bytes(out, 1, &context.trace_id().to_bytes());
    put_bytes(out, 2, &context.span_id().to_bytes());
    put_str(out, 3, &context.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        put_bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    put_str(out, 5, &span.name);
    put_uint(out, 6, kind(&span.span_kind));
    put_fixed64(out, 7, nanos(span.start_time));
    put_fixed64(out, 8, nanos(span.end_time));
    put_attributes(out, 9, &span.attributes);
    put_uint(out, 10, span.dropped_attributes_count.into());
    put_repeated(out, 11, &span.events, event_len, put_event);
    put_uint(out, 12, span.events.dropped_count.into());
    put_repeated(out, 13, &span.links, link_len, put_link);
    put_uint(out, 14, span.links.dropped_count.into());
    put_len(out, 15, status_len(&span.status));
    put_status(out, &span.status);
    // Field 16 last, as prost writes fields in tag order.
    encode_key(16, WireType::ThirtyTwoBit, out);
    out.put_u32_le(flags(context, span.parent_span_is_remote));
}

fn event_len(event: &Event) -> usize {
    fixed64_len(1, nanos(event.timestamp))
        + str_len(2, &event.name)
        + attributes_len(3, &event.attributes)
        + uint_len(4, event.dropped_attributes_count.into())
}

fn put_event(out: &mut Vec<u8>, event: &Event) {
    put_fixed64(out, 1, nanos(event.timestamp));
    put_str(out, 2, &event.name);
    put_attributes(out, 3, &event.attributes);
    put_uint(out, 4, event.dropped_attributes_count.into());
}

fn link_len(link: &Link) -> usize {
    len_field(1, 16)
        + len_field(2, 8)
        + str_len(3, &link.span_context.trace_state().header())
        + attributes_len(4, &link.attributes)
        + uint_len(5, link.dropped_attributes_count.into())
        + key_len(6)
        + 4
}

fn put_link(out: &mut Vec<u8>, link: &Link) {
    let context = &link.span_context;
    put_bytes(out, 1, &context.trace_id().to_bytes());
    put_bytes(out, 2, &context.span_id().to_bytes());
    put_str(out, 3, &context.trace_state().header());
    put_attributes(out, 4, &link.attributes);
    put_uint(out, 5, link.dropped_attributes_count.into());
    encode_key(6, WireType::ThirtyTwoBit, out);
    out.put_u32_le(flags(context, context.is_remote()));
}

/// `Status`: the message only for an error, and the code.
fn status_len(status: &Status) -> usize {
    let (code, message) = status_parts(status);
    str_len(2, message) + uint_len(3, code)
}

fn put_status(out: &mut Vec<u8>, status: &Status) {
    let (code, message) = status_parts(status);
    put_str(out, 2, message);
    put_uint(out, 3, code);
}

fn status_parts(status: &Status) -> (u64, &str) {
    match status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description),
    }
}

/// OTLP's `SpanKind` numbers (0 is "unspecified", which the SDK never has).
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// The W3C trace flags, with OTLP's two bits saying whether the parent
/// (of a span) or the linked span (of a link) is remote, and that this is
/// known.
fn flags(context: &SpanContext, remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    let flags = u32::from(context.trace_flags().to_u8()) | HAS_IS_REMOTE;
    if remote { flags | IS_REMOTE } else { flags }
}

fn nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

// ------------------------------------------------- attributes and values

fn attributes_len(tag: u32, attributes: &[KeyValue]) -> usize {
    repeated_len(tag, attributes, |kv| {
        key_value_len(kv.key.as_str(), &kv.value)
    })
}

fn put_attributes(out: &mut Vec<u8>, tag: u32, attributes: &[KeyValue]) {
    put_repeated(
        out,
        tag,
        attributes,
        |kv| key_value_len(kv.key.as_str(), &kv.value),
        |out, kv| put_key_value(out, kv.key.as_str(), &kv.value),
    );
}

/// `KeyValue`: the key, and the value (always written, as a message).
fn key_value_len(key: &str, value: &Value) -> usize {
    str_len(1, key) + len_field(2, any_value_len(value))
}

fn put_key_value(out: &mut Vec<u8>, key: &str, value: &Value) {
    put_str(out, 1, key);
    put_len(out, 2, any_value_len(value));
    put_any_value(out, value);
}

/// `AnyValue`: a `oneof`, so its one field is written even at its default.
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::String(text) => len_field(1, text.as_str().len()),
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(number) => key_len(3) + encoded_len_varint(*number as u64),
        Value::F64(_) => key_len(4) + 8,
        Value::Array(array) => len_field(5, array_len(array)),
        // A kind of value this encoder does not know: an empty AnyValue.
        _ => 0,
    }
}

fn put_any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(text) => put_bytes(out, 1, text.as_str().as_bytes()),
        Value::Bool(flag) => {
            encode_key(2, WireType::Varint, out);
            encode_varint(u64::from(*flag), out);
        }
        Value::I64(number) => {
            encode_key(3, WireType::Varint, out);
            encode_varint(*number as u64, out);
        }
        Value::F64(number) => {
            encode_key(4, WireType::SixtyFourBit, out);
            out.put_f64_le(*number);
        }
        Value::Array(array) => {
            put_len(out, 5, array_len(array));
            put_array(out, array);
        }
        _ => {}
    }
}

/// `ArrayValue`: each element an `AnyValue` of the array's kind.
fn array_len(array: &Array) -> usize {
    match array {
        Array::Bool(items) => repeated_len(1, items, |_| key_len(2) + 1),
        Array::I64(items) => repeated_len(1, items, |n| key_len(3) + encoded_len_varint(*n as u64)),
        Array::F64(items) => repeated_len(1, items, |_| key_len(4) + 8),
        Array::String(items) => repeated_len(1, items, |text| len_field(1, text.as_str().len())),
        _ => 0,
    }
}

fn put_array(out: &mut Vec<u8>, array: &Array) {
    // Each element as the `Value` of its kind (cheap: a string's is a
    // reference-counted or static text, cloned without copying it).
    fn each<T>(out: &mut Vec<u8>, items: &[T], value: impl Fn(&T) -> Value) {
        for item in items {
            let value = value(item);
            put_len(out, 1, any_value_len(&value));
            put_any_value(out, &value);
        }
    }
    match array {
        Array::Bool(items) => each(out, items, |flag| Value::Bool(*flag)),
        Array::I64(items) => each(out, items, |number| Value::I64(*number)),
        Array::F64(items) => each(out, items, |number| Value::F64(*number)),
        Array::String(items) => each(out, items, |text| Value::String(text.clone())),
        _ => {}
    }
}

// ------------------------------------------------------ protobuf's wire

/// A repeated message field's size: each item as a message of `len`.
fn repeated_len<T>(tag: u32, items: &[T], len: impl Fn(&T) -> usize) -> usize {
    items.iter().map(|item| len_field(tag, len(item))).sum()
}

/// Writes a repeated message field: each item's key and length, then
/// `put` writes its fields.
fn put_repeated<T>(
    out: &mut Vec<u8>,
    tag: u32,
    items: &[T],
    len: impl Fn(&T) -> usize,
    put: impl Fn(&mut Vec<u8>, &T),
) {
    for item in items {
        put_len(out, tag, len(item));
        put(out, item);
    }
}

/// A length-delimited field's size: key, length, contents.
fn len_field(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Writes a length-delimited field's key and length; its contents follow.
fn put_len(out: &mut Vec<u8>, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_len(out, tag, bytes.len());
    out.put_slice(bytes);
}

/// A string field, left out when empty.
fn str_len(tag: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        len_field(tag, text.len())
    }
}

fn put_str(out: &mut Vec<u8>, tag: u32, text: &str) {
    if !text.is_empty() {
        put_bytes(out, tag, text.as_bytes());
    }
}

/// A varint field (unsigned or enum), left out when 0.
fn uint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

fn put_uint(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
}

/// A fixed64 field, left out when 0.
fn fixed64_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { key_len(tag) + 8 }
}

fn put_fixed64(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.put_u64_le(value);
    }
}

#[cfg(test)]
mod tests;
