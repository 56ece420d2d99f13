//! Sending spans to an OTLP collector without ever slowing the café down.
//!
//! The SDK's batch processor collects finished spans on a thread of its own
//! and hands them, a batch at a time, to an exporter. The OTLP/gRPC exporter
//! is a tonic client, and a tonic client needs a tokio runtime for its
//! connection. Which runtime? Not the application's:
//! - the application's runtime is gone by the time the guard is dropped at
//!   the end of `main`, which is exactly when the last spans are flushed;
//! - under `--brew-mode blocking` the application's workers are stuck, and
//!   the spans that show the stall would be stuck with them.
//!
//! So [`ExportRuntime`] owns a one-thread runtime (`otel-export`) on which
//! the tonic channel is built and every export runs; [`OtlpExport`] is the
//! exporter the batch processor sees, forwarding each batch there.
//!
//! It also decides how loud a missing collector is. Every failed export is
//! not news: the first failure is a warning, recovery is one info line, and
//! in between, while the collector is known to be down, at most one export
//! per [`OUTAGE_PROBE_EVERY`] is attempted and the other batches are dropped
//! at once, so the processor's queue never backs up and shutdown is quick.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};

/// How long one export (all its retries included) may take, unless
/// `OTEL_EXPORTER_OTLP_TIMEOUT` says otherwise.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// While the collector is down, how often to try it again.
const OUTAGE_PROBE_EVERY: Duration = Duration::from_secs(1);

/// The runtime the OTLP client lives on. Stopped by the [`super::Telemetry`]
/// guard after the provider has flushed.
#[derive(Debug)]
pub(super) struct ExportRuntime {
    runtime: tokio::runtime::Runtime,
}

impl ExportRuntime {
    /// Starts the export runtime and builds, on it, an exporter sending to
    /// `endpoint` (a URL with its scheme). Fails if the endpoint is not a
    /// usable URL.
    pub(super) fn start(endpoint: &str) -> Result<(Self, OtlpExport), String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otel-export")
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the export runtime: {error}"))?;
        let endpoint = endpoint.to_owned();
        let timeout = export_timeout();
        let exporter = {
            // Building the channel spawns its background task: on our runtime.
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(timeout)
                // Two quick retries inside the time limit ride out a
                // collector restart; a longer outage is handled below.
                .with_retry_policy(
                    opentelemetry_otlp::RetryPolicy::recommended().with_max_retries(2),
                )
                .build()
                .map_err(|error| error.to_string())?
        };
        let exporter = OtlpExport {
            inner: Arc::new(exporter),
            runtime: runtime.handle().clone(),
            endpoint,
            timeout,
            reachable: AtomicBool::new(true),
            last_failure: Mutex::new(None),
        };
        Ok((ExportRuntime { runtime }, exporter))
    }

    /// Stops the runtime without waiting: whatever it still runs is an
    /// export that has already had its time. Safe inside or outside another
    /// runtime (a plain `drop` would panic inside one).
    pub(super) fn stop(self) {
        self.runtime.shutdown_background();
    }
}

fn export_timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok()?.trim().parse::<u64>().ok())
    .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis)
}

/// The exporter the batch processor calls: runs each export on the export
/// runtime, within a time limit, and reports outages once.
#[derive(Debug)]
pub(super) struct OtlpExport {
    /// Shared with the export task in flight; alone again between exports.
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
    endpoint: String,
    timeout: Duration,
    /// False from the first failed export until one succeeds again.
    reachable: AtomicBool,
    /// When the last export failed, to space out probes during an outage.
    last_failure: Mutex<Option<Instant>>,
}

impl OtlpExport {
    /// During an outage, whether it is time to try the collector again.
    fn should_attempt(&self) -> bool {
        if self.reachable.load(Ordering::Relaxed) {
            return true;
        }
        let last_failure = self
            .last_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        last_failure.is_none_or(|at| at.elapsed() >= OUTAGE_PROBE_EVERY)
    }

    fn note(&self, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.endpoint, "traces reach the collector again");
                }
            }
            Err(error) => {
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        %error,
                        "cannot export traces: is a collector listening there (OTLP over gRPC, usually port 4317)? \
                         Spans are dropped until it answers; this is said once per outage"
                    );
                }
            }
        }
    }
}

impl SpanExporter for OtlpExport {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if !self.should_attempt() {
            return Err(OTelSdkError::InternalFailure(
                "collector unreachable; batch dropped".into(),
            ));
        }
        let inner = Arc::clone(&self.inner);
        let timeout = self.timeout;
        // The export runs on the export runtime; this thread (the batch
        // processor's) just waits for its result. The time limit is inside
        // the task, so the task, and its hold on `inner`, ends with it.
        let attempt = self.runtime.spawn(async move {
            tokio::time::timeout(timeout, inner.export(batch))
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
        });
        let result = attempt.await.unwrap_or_else(|_| {
            // The runtime was stopped (the process is exiting).
            Err(OTelSdkError::InternalFailure(
                "export runtime stopped".into(),
            ))
        });
        self.note(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, when the provider is built, before any export: the
        // exporter is not shared yet.
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.set_resource(resource),
            None => tracing::debug!("resource set during an export: ignored"),
        }
    }
}
