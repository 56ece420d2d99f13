//! Which spans and events reach each layer: the console's filter
//! (`RUST_LOG`) and the OpenTelemetry layer's fixed one, which keeps the
//! exporter from tracing its own requests and spares the trace backend
//! every `info!` line.

use tracing_subscriber::{
    EnvFilter,
    filter::{FilterExt, LevelFilter, Targets, filter_fn},
};

/// Which spans the OpenTelemetry layer records, whatever `RUST_LOG` says:
/// everything at `info` and above, and the gRPC call spans of
/// [`crate::propagation`] (at `trace`, under their own target), except the
/// transport crates (their spans would trace the exporter's own requests)
/// and the exporter's own reports.
pub const OTEL_FILTER_DIRECTIVES: &[(&str, LevelFilter)] = &[
    (
        tracing_opentelemetry_instrumentation_sdk::TRACING_TARGET,
        LevelFilter::TRACE,
    ),
    ("h2", LevelFilter::OFF),
    ("hyper", LevelFilter::OFF),
    ("hyper_util", LevelFilter::OFF),
    ("tonic", LevelFilter::OFF),
    ("tower", LevelFilter::OFF),
    ("opentelemetry", LevelFilter::OFF),
    ("opentelemetry_sdk", LevelFilter::OFF),
    // Our exporter's own outage reports.
    (super::OWN_TARGET, LevelFilter::OFF),
];

/// The target of the spans that only draw a bar in a trace view: spans a
/// task holds but never enters (an order's `queue.wait` and `brewing`
/// phases), so that no log line is ever written inside them and the
/// console has nothing to show them in. The console's filter leaves them
/// out; with nothing exported no layer wants them, and they are not made
/// at all (a span the console takes costs its slot in the registry and its
/// fields formatted, printed or not). The OpenTelemetry layer takes them
/// as any other span at `info`. Give it as `target:` in `info_span!`.
pub const TRACE_ONLY: &str = "cafe_trace_only";

/// The OpenTelemetry layer's filter: the spans of [`OTEL_FILTER_DIRECTIVES`],
/// and of the events only warnings and errors.
///
/// An event inside a span becomes one of the span's events, with its
/// fields as attributes: every `info!` line of an order would travel to the
/// trace backend with the order's spans. They already go to the logs (with
/// the trace id, in JSON), and what they say the trace shows anyway (a span
/// per phase, its attributes), and as span events they cost the exporting
/// café a share of each order's CPU (`docs/performance.md`). A warning or an error still marks the span it happened in (a
/// barista that went away), and a moment that belongs on the bar is added
/// to the span on purpose (`Span::add_event`, as the buzzers' `buzz`).
pub(super) fn otel_filter<S>() -> impl tracing_subscriber::layer::Filter<S> {
    let spans_and_warnings =
        filter_fn(|metadata| metadata.is_span() || *metadata.level() <= tracing::Level::WARN);
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_targets(OTEL_FILTER_DIRECTIVES.iter().copied())
        .and(spans_and_warnings)
}

/// What the console writes: `rust_log` (`RUST_LOG`) if it parses, else
/// `default`, without the batch processor's export errors and without the
/// spans made for traces only ([`TRACE_ONLY`]).
pub(super) fn console_filter<S>(
    rust_log: Option<String>,
    default: &str,
) -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber,
{
    let directives = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // The batch processor logs every failed export; our exporter says it
    // once per outage instead (see `export`).
    //
    // The level hint matters more than the filter: a filter without one
    // makes the pair's hint unknown, so the subscriber's most verbose level
    // becomes TRACE, and every `trace!` in h2, hyper and tokio (scores per
    // order) is built and offered to the subscriber only to be refused, one
    // by one. With the hint (this filter refuses, it never adds a level),
    // `RUST_LOG`'s own most verbose level stays the subscriber's, and those
    // macros stop at a single comparison (what it saved:
    // `docs/performance.md`).
    directives.and(
        filter_fn(|metadata| {
            metadata.name() != "BatchSpanProcessor.ExportError"
                && !(metadata.is_span() && metadata.target() == TRACE_ONLY)
        })
        .with_max_level_hint(LevelFilter::TRACE),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracing_subscriber::{Layer, layer::SubscriberExt};

    use super::*;

    #[test]
    fn the_exporter_never_traces_its_own_transport() {
        let filter = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_targets(OTEL_FILTER_DIRECTIVES.iter().copied());
        for target in [
            "h2::codec",
            "hyper_util::client",
            "tonic::transport",
            "tower::buffer",
        ] {
            assert!(
                !filter.would_enable(target, &tracing::Level::ERROR),
                "{target}"
            );
        }
        assert!(filter.would_enable("cafe_server::service", &tracing::Level::INFO));
        // The gRPC call spans (`crate::propagation`).
        assert!(filter.would_enable(
            tracing_opentelemetry_instrumentation_sdk::TRACING_TARGET,
            &tracing::Level::TRACE
        ));
        assert!(!filter.would_enable("cafe_server::service", &tracing::Level::DEBUG));
    }

    #[test]
    fn the_console_keeps_rust_logs_most_verbose_level() {
        // Without it, every `trace!` of h2 and hyper reaches the subscriber.
        use tracing_subscriber::{Registry, layer::Filter};
        let at = |rust_log: Option<&str>| {
            Filter::<Registry>::max_level_hint(&console_filter::<Registry>(
                rust_log.map(str::to_owned),
                "info",
            ))
        };
        assert_eq!(at(None), Some(LevelFilter::INFO));
        assert_eq!(at(Some("warn,cafe_server=debug")), Some(LevelFilter::DEBUG));
        assert_eq!(at(Some("off")), Some(LevelFilter::OFF));
    }

    #[test]
    fn only_spans_warnings_and_errors_reach_the_trace_layer() {
        use std::sync::Mutex;
        use tracing::{Event, Subscriber, span};
        use tracing_subscriber::layer::Context;

        /// Notes what reaches it: span names, events by level.
        struct Seen(Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber> Layer<S> for Seen {
            fn on_new_span(&self, attrs: &span::Attributes<'_>, _: &span::Id, _: Context<'_, S>) {
                self.0.lock().unwrap().push(attrs.metadata().name().into());
            }
            fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
                self.0
                    .lock()
                    .unwrap()
                    .push(event.metadata().level().to_string());
            }
        }

        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber =
            tracing_subscriber::registry().with(Seen(Arc::clone(&seen)).with_filter(otel_filter()));
        // The café's target: this module's own is one the filter turns off
        // (the exporter's reports).
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: "cafe_server::service", "order_coffee");
            let _entered = span.enter();
            tracing::info!(target: "cafe_server::service", "order placed");
            tracing::warn!(target: "cafe_server::service", "barista went away");
            tracing::error!(target: "cafe_server::service", "cannot brew");
            tracing::debug_span!(target: "cafe_server::service", "too fine").in_scope(|| {});
        });
        assert_eq!(*seen.lock().unwrap(), ["order_coffee", "WARN", "ERROR"]);
    }
}
