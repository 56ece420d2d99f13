//! Logs and traces for every binary of the café, set up in one place.
//!
//! Each binary calls [`init`] once, first thing, and keeps the returned
//! [`Telemetry`] guard alive until it exits: dropping it flushes the spans
//! still buffered, so even a two-second CLI run or a Ctrl-C'd server sends
//! its last spans.
//!
//! One `tracing` subscriber feeds two layers, each with its own filter:
//! - the **console** layer writes log lines to stderr (stdout belongs to the
//!   CLI's output), filtered by `RUST_LOG` (default `info`), as text for
//!   people or as JSON (with `trace_id` and `span_id` on every line, so a log
//!   line leads to its trace);
//! - the **OpenTelemetry** layer turns spans into OpenTelemetry spans. Its
//!   filter is fixed ([`OTEL_FILTER_DIRECTIVES`]) and independent of
//!   `RUST_LOG`: turning on debug logs must not flood the trace backend, and
//!   the exporter's own gRPC client (h2, hyper, tonic, tower) must never
//!   record spans about sending spans. Without that filter every export makes
//!   spans that need exporting, and throughput collapses.
//!
//! Spans get trace ids whether or not they are exported, so the `x-trace-id`
//! response header and the JSON logs work without a collector. Export over
//! OTLP/gRPC starts only when an endpoint is given (`--otlp-endpoint` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`); `telemetry/export.rs` explains how it
//! stays out of the way when the collector is missing. The other standard
//! variables:
//! - `OTEL_SERVICE_NAME`: the service's name in the trace backend (defaults
//!   to [`TelemetryConfig::service_name`]); read here.
//! - `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`: read by the SDK itself
//!   (e.g. `parentbased_traceidratio` and `0.1`); default: every trace.
//! - `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`,
//!   `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: read by the SDK's batch processor.
//! - `OTEL_EXPORTER_OTLP_TIMEOUT` (ms): read here, default 1 s (not 10 s: a
//!   short-lived process must not hang at exit on an unreachable collector).
//! - `OTEL_RESOURCE_ATTRIBUTES`: read by the SDK.
//!
//! The W3C `traceparent` travelling between processes is the job of
//! [`crate::propagation`].

mod export;
mod json;

use std::{borrow::Cow, io::IsTerminal, time::Duration};

use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, LevelFilter, Targets, filter_fn},
    layer::SubscriberExt,
};

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
    ("opentelemetry-otlp", LevelFilter::OFF),
    // Our exporter's own outage reports.
    ("cafe_core::telemetry", LevelFilter::OFF),
];

/// The Jaeger UI used by [`jaeger_trace_url`] unless `CAFE_JAEGER_UI` says
/// otherwise.
pub const DEFAULT_JAEGER_UI: &str = "http://localhost:16686";

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
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_RESOURCE_ATTRIBUTES",
    "RUST_LOG",
    "NO_COLOR",
    "CAFE_JAEGER_UI",
];

/// Keeps telemetry running; dropping it flushes the spans still buffered
/// (waiting at most about 1.5 s) and stops the exporter.
///
/// It may be dropped anywhere, including after the tokio runtime is gone
/// (the end of a `main` that used `Runtime::block_on`): the exporter runs
/// on a thread and a small runtime of its own, not on the application's.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// The runtime the OTLP client runs on, when exporting.
    export: Option<export::ExportRuntime>,
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
        Telemetry {
            provider: None,
            export: None,
        }
    }

    /// Sends the spans that have ended so far, now rather than at the next
    /// batch (every 5 s by default). Blocks until they are sent or the SDK's
    /// time limit (5 s) passes.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::debug!(%error, "telemetry flush incomplete");
        }
    }

    /// Flushes and stops the exporter now (what dropping the guard does),
    /// returning once the last spans are sent or the time limit passed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // The provider first: its batch processor hands the last spans to
        // the exporter, which needs its runtime to send them.
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
        {
            tracing::debug!(%error, "telemetry shutdown incomplete");
        }
        if let Some(export) = self.export.take() {
            export.stop();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
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
        telemetry.shutdown();
        return Telemetry::inert();
    }
    telemetry
}

/// Builds what [`init`] installs, without installing it: the subscriber
/// as a [`tracing::Dispatch`], and its guard. A test uses it to give one
/// test its own exporter (`tracing::dispatcher::set_default` on a
/// current-thread runtime, where every task runs on the test's thread).
pub fn build(config: &TelemetryConfig) -> (Telemetry, tracing::Dispatch) {
    let service_name: Cow<'static, str> = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .map_or(Cow::Borrowed(config.service_name), Cow::Owned);
    let endpoint = config
        .otlp_endpoint
        .clone()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
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

    // The provider: it gives spans their ids, samples them (the SDK reads
    // OTEL_TRACES_SAMPLER) and, when exporting, batches them for the exporter.
    let mut provider = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(service_name.clone())
            .build(),
    );
    let mut export = None;
    let mut export_problem = None;
    if let Some(endpoint) = &endpoint {
        match export::ExportRuntime::start(endpoint) {
            Ok((runtime, exporter)) => {
                provider = provider.with_batch_exporter(exporter);
                export = Some(runtime);
            }
            Err(problem) => export_problem = Some(problem),
        }
    }
    let provider = provider.build();
    let tracer = provider.tracer("cafe");
    opentelemetry::global::set_text_map_propagator(crate::propagation::propagator());

    let console_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config.default_filter));
    // The batch processor logs every failed export; our exporter says it
    // once per outage instead (see `export`).
    let console_filter = console_filter.and(filter_fn(|metadata| {
        metadata.name() != "BatchSpanProcessor.ExportError"
    }));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
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
    let otel_filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_targets(OTEL_FILTER_DIRECTIVES.iter().copied());
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(otel_filter);

    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(console).with(otel));

    // Said through the new subscriber, so it goes where the logs will go.
    tracing::dispatcher::with_default(&dispatch, || match (&endpoint, &export_problem) {
        (Some(endpoint), None) => {
            tracing::info!(service = %service_name, %endpoint, "exporting traces over OTLP/gRPC");
        }
        (Some(endpoint), Some(problem)) => {
            tracing::warn!(%endpoint, %problem, "not exporting traces: the OTLP endpoint is unusable (check --otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT)");
        }
        (None, _) => {
            tracing::debug!(service = %service_name, "traces are not exported (no OTLP endpoint)");
        }
    });
    let telemetry = Telemetry {
        provider: Some(provider),
        export,
    };
    (telemetry, dispatch)
}

/// The trace id of the current span, if it has one (it does whenever
/// telemetry is initialised and the span is enabled), else of the caller
/// being served.
pub fn current_trace_id() -> Option<TraceId> {
    let context = tracing_opentelemetry_instrumentation_sdk::find_current_context();
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
}
