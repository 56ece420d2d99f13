//! Logs and traces for gRPC clients and servers, set up in one place, and
//! what carries one trace across them.
//!
//! Each binary calls [`init`] once, first thing, and keeps the returned
//! [`Telemetry`] guard alive until it exits: dropping it flushes the spans
//! still buffered, so even a two-second CLI run or a Ctrl-C'd server sends
//! its last spans.
//!
//! One `tracing` subscriber feeds up to two layers, each with its own filter
//! (`filters`):
//! - the **console** layer writes log lines to stderr (stdout belongs to the
//!   CLI's output), filtered by `RUST_LOG` (default `info`), as text for
//!   people or as JSON (with `trace_id` and `span_id`, so a log line leads
//!   to its trace);
//! - the **OpenTelemetry** layer, *only when exporting*, turns spans into
//!   OpenTelemetry spans, with a fixed filter independent of `RUST_LOG`:
//!   debug logs must not flood the trace backend, and the exporter's own
//!   gRPC client must never record spans about sending spans. It does work
//!   for every span it sees, exported or not, hence only when exporting;
//!   without it a server echoes the caller's trace id instead of making its
//!   own (see [`crate::propagation`]).
//!
//! Export over OTLP/gRPC starts only when an endpoint is given; `export`
//! keeps it out of the way when the collector is missing, `wire` encodes
//! each batch, `queue` counts every dropped span, `settings` reads the
//! `OTEL_*` variables ([`ENV_VARS`], explained in `docs/tracing.md`).
//!
//! # Layout
//! - [`propagation`]: the W3C trace context in gRPC metadata, a span per
//!   call on either side.
//! - [`outcome`]: the one wrapper that reads a call's outcome (headers,
//!   trailers, end or drop) for whoever watches calls.
//! - [`links`]: where a trace can be found.

mod export;
mod filters;
mod json;
pub mod links;
pub mod outcome;
pub mod propagation;
mod queue;
mod settings;
mod wire;

pub use filters::{OTEL_FILTER_DIRECTIVES, TRACE_ONLY};
pub use links::{DEFAULT_JAEGER_UI, current_trace_id, jaeger_trace_url, jaeger_trace_url_in};
pub use queue::{DROP_REPORT_EVERY, SpanCounts};
pub use settings::{
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_MAX_CONCURRENT_EXPORTS, DEFAULT_MAX_EXPORT_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE, DEFAULT_SCHEDULED_DELAY, ExportSettings,
};

use std::{borrow::Cow, sync::Arc, time::Duration};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    Resource,
    trace::{BatchSpanProcessor, SdkTracerProvider},
};
use tracing_subscriber::{Layer, layer::SubscriberExt};

use filters::{console_filter, otel_filter};

/// The target of this module's own logs (the exporter's outage reports),
/// whatever the crate is called.
const OWN_TARGET: &str = module_path!();

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one coloured line per event.
    #[default]
    Text,
    /// For machines: one JSON object per event, with `trace_id` and
    /// `span_id` of the span it happened in.
    Json,
}

/// What [`init`] needs to know.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The service's name in logs and, unless `OTEL_SERVICE_NAME` says
    /// otherwise, in traces: `cafe`, `barista` or `cafe-client`.
    pub service_name: &'static str,
    /// How to write log lines.
    pub log_format: LogFormat,
    /// The filter used when `RUST_LOG` is not set, e.g. `info`.
    pub default_filter: &'static str,
    /// Where to send traces over OTLP/gRPC, e.g. `http://localhost:4317`.
    /// `None` falls back to `OTEL_EXPORTER_OTLP_ENDPOINT`; when neither is
    /// set, nothing is exported.
    pub otlp_endpoint: Option<String>,
}

/// How long dropping the guard may wait for the last spans to be sent. A
/// container's stop grace period must leave room for it after the server's
/// own shutdown grace (`tests/compose.rs` checks that).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(1500);

/// Every environment variable that telemetry reads, here or in the
/// OpenTelemetry SDK it sets up (see the module docs for what each means).
/// `tests/compose.rs` accepts these in `docker-compose.yml` besides the
/// binaries' own flags' variables.
pub const ENV_VARS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_MAX_CONCURRENT_EXPORTS",
    "OTEL_RESOURCE_ATTRIBUTES",
    "RUST_LOG",
    "NO_COLOR",
    "CAFE_JAEGER_UI",
];

/// Spans that this process's telemetry failed to deliver so far (dropped
/// because the export queue was full, or lost in a failed export), over
/// every telemetry stack it built: what a benchmark reports. One stack's
/// own counts are [`Telemetry::span_counts`].
pub fn spans_dropped() -> u64 {
    queue::process_dropped()
}

/// Keeps telemetry running; dropping it flushes the spans still buffered
/// (waiting at most about 1.5 s) and stops the exporter.
///
/// It may be dropped anywhere, including after the tokio runtime is gone
/// (the end of a `main` that used `Runtime::block_on`): the exporter runs
/// on a thread and a small runtime of its own, not on the application's.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct Telemetry {
    /// Present only when exporting.
    export: Option<Export>,
}

/// What runs while exporting, and is stopped by the guard.
struct Export {
    provider: SdkTracerProvider,
    /// The runtime the OTLP client runs on.
    runtime: export::ExportRuntime,
    /// What became of every span.
    books: Arc<queue::QueueBooks>,
    /// How long a flush waits for the exports it started.
    export_timeout: Duration,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.export.is_some())
            .finish()
    }
}

impl Telemetry {
    /// A guard with nothing to stop.
    fn inert() -> Self {
        Telemetry { export: None }
    }

    /// Sends the spans that have ended so far, now rather than at the next
    /// batch (every 5 s by default). Blocks until they are sent or the
    /// export's time limit (1 s by default) passes.
    pub fn flush(&self) {
        if let Some(export) = &self.export {
            if let Err(error) = export.provider.force_flush() {
                tracing::debug!(%error, "telemetry flush incomplete");
            }
            // The processor has handed its batches over; they may still be
            // on the wire.
            export.runtime.wait_idle(export.export_timeout);
        }
    }

    /// What became of this stack's spans so far: exported, dropped because
    /// the queue was full, lost in a failed export. All zero when not
    /// exporting. Final once the guard has shut down.
    pub fn span_counts(&self) -> SpanCounts {
        self.export
            .as_ref()
            .map(|export| export.books.counts())
            .unwrap_or_default()
    }

    /// Flushes and stops the exporter now (what dropping the guard does),
    /// returning once the last spans are sent or the time limit passed,
    /// with the final [`SpanCounts`].
    pub fn shutdown(mut self) -> SpanCounts {
        self.stop()
    }

    fn stop(&mut self) -> SpanCounts {
        let Some(export) = self.export.take() else {
            return SpanCounts::default();
        };
        // The provider first: its batch processor hands the last spans to
        // the exporter, which needs its runtime to send them.
        if let Err(error) = export.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::debug!(%error, "telemetry shutdown incomplete");
        }
        export.runtime.stop();
        // The final account, always, so that "no span was lost" is a line
        // someone (or `bench/run`) can read rather than the absence of one.
        // Info, not a warning: each loss was warned about when it happened
        // (a full queue, a missing collector).
        let counts = export.books.counts();
        tracing::info!(
            exported = counts.exported,
            dropped = counts.dropped(),
            dropped_queue_full = counts.dropped_queue_full,
            lost_in_export = counts.lost_in_export,
            "telemetry stopped: {}",
            if counts.dropped() == 0 {
                "every span was exported"
            } else {
                "some spans were not exported"
            }
        );
        counts
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Installs the global subscriber and, if an endpoint is configured, the
/// OTLP exporter. Call once per process; a second call in the same process
/// (tests) changes nothing and returns a guard that does nothing.
pub fn init(config: &TelemetryConfig) -> Telemetry {
    let (telemetry, dispatch) = build(config);
    if tracing::dispatcher::set_global_default(dispatch).is_err() {
        // A second init (tests that start several services in one process)
        // keeps the first subscriber; this one's provider would never see a
        // span.
        let _ = telemetry.shutdown();
        return Telemetry::inert();
    }
    telemetry
}

/// Builds what [`init`] installs, without installing it: the subscriber
/// as a [`tracing::Dispatch`], and its guard. A test uses it to give one
/// test its own exporter (`tracing::dispatcher::set_default` on a
/// current-thread runtime, where every task runs on the test's thread).
pub fn build(config: &TelemetryConfig) -> (Telemetry, tracing::Dispatch) {
    build_with_env(config, |name| std::env::var(name).ok())
}

/// [`build`], reading the variables it honours (`OTEL_*`, `RUST_LOG`,
/// `NO_COLOR`) from `env` instead of the process environment: how a test
/// sets them without `std::env::set_var`. (`OTEL_RESOURCE_ATTRIBUTES` and
/// the span limits are read by the SDK from the process environment.)
pub fn build_with_env(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
) -> (Telemetry, tracing::Dispatch) {
    let service_name: Cow<'static, str> = env("OTEL_SERVICE_NAME")
        .filter(|name| !name.trim().is_empty())
        .map_or(Cow::Borrowed(config.service_name), Cow::Owned);
    let endpoint = config
        .otlp_endpoint
        .clone()
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .map(|endpoint| endpoint.trim().to_owned())
        .filter(|endpoint| !endpoint.is_empty())
        // "localhost:4317" is what people type; tonic needs a scheme.
        .map(|endpoint| {
            if endpoint.contains("://") {
                endpoint
            } else {
                format!("http://{endpoint}")
            }
        });
    let settings = ExportSettings::from_lookup(&env);

    // The layers read and write `traceparent` through the global propagator,
    // exporting or not (a server without export still echoes its caller).
    opentelemetry::global::set_text_map_propagator(crate::propagation::propagator());

    let mut export_problem = None;
    let export = endpoint.as_deref().and_then(|endpoint| {
        match start_export(endpoint, &service_name, &settings) {
            Ok(export) => Some(export),
            Err(problem) => {
                export_problem = Some(problem);
                None
            }
        }
    });

    let console_filter = console_filter(env("RUST_LOG"), config.default_filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && env("NO_COLOR").is_none();
    let console = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(console_filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonWithTraceIds)
            .with_filter(console_filter)
            .boxed(),
    };
    // Only when exporting (and then installed; otherwise not at all, see
    // below).
    let otel = export.as_ref().map(|export| {
        let otel_filter = otel_filter();
        // A span carries what the café records on it, not where in the code
        // it was made (`code.*`), on which thread (`thread.*`), its target,
        // nor busy/idle timings: those were much of the bytes exported and
        // of the layer's CPU (`docs/performance.md`, measured with
        // `examples/span_load.rs` in cafe-testkit).
        //
        // Nor does it make each span's OpenTelemetry context current while
        // the span is entered ("context activation"), except for JSON logs,
        // which read the trace id from there (`json`). Whatever else needs
        // a span's context asks the span for it (`propagation`), and the
        // layer finds a new span's parent among tracing's own spans.
        tracing_opentelemetry::layer()
            .with_tracer(export.provider.tracer("cafe"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(config.log_format == LogFormat::Json)
            .with_filter(otel_filter)
    });

    // Without export the console is the only layer, not one beside an
    // empty `Option` layer: over a layer with its own filter, a layer that
    // takes everything turns each callsite the console refuses from "never"
    // into "sometimes", so it is asked again at every use and its spans are
    // still made in the registry (only not formatted). Alone, the console's
    // "never" stands, and a refused `info_span!` costs one atomic load.
    let subscriber = tracing_subscriber::registry().with(console);
    let dispatch = match otel {
        Some(otel) => tracing::Dispatch::new(subscriber.with(otel)),
        None => tracing::Dispatch::new(subscriber),
    };

    // Said through the new subscriber, so it goes where the logs will go.
    tracing::dispatcher::with_default(&dispatch, || match (&endpoint, &export_problem) {
        (Some(endpoint), None) => {
            tracing::info!(
                service = %service_name,
                %endpoint,
                queue = settings.max_queue_size,
                batch = settings.max_export_batch_size,
                concurrent_exports = settings.max_concurrent_exports,
                "exporting traces over OTLP/gRPC"
            );
        }
        (Some(endpoint), Some(problem)) => {
            tracing::warn!(%endpoint, %problem, "not exporting traces: the OTLP export is misconfigured (check --otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS)");
        }
        (None, _) => {
            tracing::debug!(service = %service_name, "traces are not exported (no OTLP endpoint)");
        }
    });
    (Telemetry { export }, dispatch)
}

/// The provider, its counted batch queue and the exporter, for `endpoint`.
fn start_export(
    endpoint: &str,
    service_name: &str,
    settings: &ExportSettings,
) -> Result<Export, String> {
    let mut headers = tonic::metadata::MetadataMap::new();
    for (key, value) in &settings.headers {
        let key = tonic::metadata::AsciiMetadataKey::from_bytes(key.as_bytes()).map_err(|_| {
            format!("OTEL_EXPORTER_OTLP_(TRACES_)HEADERS: {key:?} is not a header name")
        })?;
        let value = value.parse().map_err(|_| {
            format!("OTEL_EXPORTER_OTLP_(TRACES_)HEADERS: the value of {key} is not a header value")
        })?;
        headers.insert(key, value);
    }
    let books = queue::QueueBooks::new(settings.max_queue_size);
    let (runtime, exporter) = export::ExportRuntime::start(
        endpoint,
        headers,
        settings.export_timeout,
        settings.max_concurrent_exports,
        Arc::clone(&books),
    )?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(settings.batch_config())
        .build();
    // The provider gives spans their ids, samples them and hands the
    // finished ones to the queue.
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .with_sampler(settings.sampler.clone())
        .with_span_processor(queue::CountedQueue::new(batches, Arc::clone(&books)))
        .build();
    Ok(Export {
        provider,
        runtime,
        books,
        export_timeout: settings.export_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test service's telemetry with no endpoint: nothing exported.
    fn unexported(default_filter: &'static str) -> TelemetryConfig {
        TelemetryConfig {
            service_name: "test",
            log_format: LogFormat::Text,
            default_filter,
            otlp_endpoint: None,
        }
    }

    #[test]
    fn spans_for_traces_only_are_not_made_when_nothing_is_exported() {
        let config = unexported("info");
        let (_telemetry, dispatch) = build_with_env(&config, |_| None);
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(tracing::info_span!(target: TRACE_ONLY, "queue.wait").is_disabled());
            assert!(!tracing::info_span!("order_coffee").is_disabled());
        });
    }

    #[test]
    fn a_header_that_cannot_be_sent_stops_export() {
        let config = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:4317".into()),
            ..unexported("off")
        };
        let (telemetry, _) = build_with_env(&config, |name| {
            (name == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "no spaces in a name=1".to_owned())
        });
        assert!(telemetry.export.is_none());
        let (telemetry, _) = build_with_env(&config, |name| {
            (name == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "x-api-key=1".to_owned())
        });
        assert!(telemetry.export.is_some());
        let _ = telemetry.shutdown();
    }

    #[test]
    fn without_an_endpoint_nothing_is_exported_and_no_layer_is_installed() {
        let config = unexported("off");
        let (telemetry, dispatch) = build_with_env(&config, |_| None);
        assert!(telemetry.export.is_none());
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("unexported");
            let _entered = span.enter();
            assert_eq!(current_trace_id(), None, "no trace ids of our own");
        });
    }
}
