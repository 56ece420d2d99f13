//! JSON log lines that name their trace: `--log-format json`.
//!
//! tracing-subscriber's own JSON format knows nothing of OpenTelemetry, so
//! this formatter writes the same kind of object and adds `trace_id` and
//! `span_id`. Where do they come from? With JSON logs (and only then: nothing
//! else reads it, and it costs every span two calls), the OpenTelemetry
//! layer *activates* a span's OpenTelemetry context whenever the span is
//! entered, so while an event inside it is being written,
//! `opentelemetry::Context::current()` is that span's context. (Asking `tracing::Span::current()` here would not
//! work: inside the subscriber, tracing hides the dispatcher to prevent
//! re-entrance.)
//!
//! Without export there is no such layer; while a server serves a caller
//! that sent `traceparent`, the current context is the caller's (see
//! [`crate::propagation`]): the line gets the caller's `trace_id`, and no
//! `span_id` (the caller's span is not this line's span).
//!
//! A line looks like:
//! `{"timestamp":"…","level":"INFO","target":"cafe_server::service",
//!   "fields":{"message":"brewing",…},"span":{"name":"brew","order.id":…},
//!   "trace_id":"4bf9…","span_id":"00f0…"}`

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The event formatter for JSON lines with trace and span ids.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct JsonWithTraceIds;

impl<S, N> FormatEvent<S, N> for JsonWithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();

        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());

        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        line.insert("fields".into(), fields.into());

        // The innermost span, with its fields, as the built-in JSON format
        // writes it. With `JsonFields`, a span's stored fields are a JSON
        // object already.
        if let Some(span) = ctx.lookup_current() {
            let mut object = Map::new();
            object.insert("name".into(), span.name().into());
            if let Some(stored) = span.extensions().get::<FormattedFields<N>>()
                && let Ok(Value::Object(span_fields)) = serde_json::from_str::<Value>(stored)
            {
                object.extend(span_fields);
            }
            line.insert("span".into(), object.into());
        }

        let context = opentelemetry::Context::current();
        let span = context.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            line.insert(
                "trace_id".into(),
                span_context.trace_id().to_string().into(),
            );
            if !span_context.is_remote() {
                line.insert("span_id".into(), span_context.span_id().to_string().into());
            }
        }

        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields into a JSON object, keeping numbers and
/// booleans as such.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}
