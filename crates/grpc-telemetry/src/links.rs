//! Where a trace can be found: the current trace id, and its address in
//! the Jaeger UI (what the CLI prints after an order).

use opentelemetry::trace::{TraceContextExt, TraceId};

/// The Jaeger UI used by [`jaeger_trace_url`] unless `CAFE_JAEGER_UI` says
/// otherwise.
pub const DEFAULT_JAEGER_UI: &str = "http://localhost:16686";

/// The trace id of the current span, if it has one: when exporting, the
/// span's; otherwise the trace id of the caller being served, if it sent
/// one.
pub fn current_trace_id() -> Option<TraceId> {
    let context = crate::propagation::current_context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id())
}

/// The address of one trace in the Jaeger UI: `CAFE_JAEGER_UI` (default
/// [`DEFAULT_JAEGER_UI`]) followed by `/trace/<trace id>`.
pub fn jaeger_trace_url(trace_id: &str) -> String {
    let ui = std::env::var("CAFE_JAEGER_UI")
        .ok()
        .filter(|ui| !ui.trim().is_empty());
    jaeger_trace_url_in(ui.as_deref().unwrap_or(DEFAULT_JAEGER_UI), trace_id)
}

/// [`jaeger_trace_url`] for a given UI address.
pub fn jaeger_trace_url_in(ui: &str, trace_id: &str) -> String {
    format!("{}/trace/{trace_id}", ui.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaeger_links_join_cleanly() {
        assert_eq!(
            jaeger_trace_url_in(
                "http://localhost:16686/",
                "4bf92f3577b34da6a3ce929d0e0e4736"
            ),
            "http://localhost:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
