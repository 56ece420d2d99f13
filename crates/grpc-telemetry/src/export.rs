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
//! So [`ExportRuntime`] owns a small runtime (`otel-export`, one thread per
//! concurrent export) on which the tonic channel is built and every export
//! runs; [`OtlpExport`] is the
//! exporter the batch processor sees, forwarding each batch there. Each
//! batch is encoded by `wire` and sent by a plain tonic client
//! ([`Collector`]), not by `opentelemetry-otlp`'s exporter: `wire` says why.
//!
//! **Several exports in flight.** The SDK's thread-based processor waits for
//! each export before it takes the next batch, and ignores
//! `OTEL_BSP_MAX_CONCURRENT_EXPORTS`. Waiting a whole round trip per batch
//! caps what one process can send; so [`OtlpExport::export`] starts the
//! export on the export runtime and returns at once, and only waits when
//! `max_concurrent_exports` of them are already on the wire. Meanwhile the
//! queue absorbs what arrives (see `queue.rs`), and each finished export
//! settles its spans in the books as exported or lost.
//!
//! It also decides how loud a missing collector is. Every failed export is
//! not news: the first failure is a warning, recovery is one info line, and
//! in between, while the collector is known to be down, at most one export
//! per [`OUTAGE_PROBE_EVERY`] is attempted and the other batches are dropped
//! at once (and counted), so the processor's queue never backs up and
//! shutdown is quick.

use std::{
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};
use tonic::{
    Code,
    codec::{Codec, EncodeBuf, Encoder},
    metadata::MetadataMap,
    transport::{Channel, Endpoint},
};
use tonic_prost::ProstDecoder;

use super::{queue::QueueBooks, wire};

/// While the collector is down, how often to try it again.
const OUTAGE_PROBE_EVERY: Duration = Duration::from_secs(1);

/// Tries of one export after the first, within its time limit, and the
/// wait before the first of them (doubled before each next one): two
/// quick retries ride out a collector restart; a longer outage is handled
/// by [`Health`].
const RETRIES: u32 = 2;
const FIRST_RETRY_AFTER: Duration = Duration::from_millis(100);

/// The one method called.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The runtime the OTLP client lives on. Stopped by the [`super::Telemetry`]
/// guard after the provider has flushed.
#[derive(Debug)]
pub(super) struct ExportRuntime {
    runtime: tokio::runtime::Runtime,
    in_flight: Arc<InFlight>,
}

impl ExportRuntime {
    /// Starts the export runtime and builds, on it, an exporter sending to
    /// `endpoint` (a URL with its scheme) with `headers` on every request,
    /// with at most `concurrent` exports at once, each within `timeout`,
    /// settling its spans in `books`. Fails if the endpoint is not a usable
    /// URL.
    pub(super) fn start(
        endpoint: &str,
        headers: MetadataMap,
        timeout: Duration,
        concurrent: usize,
        books: Arc<QueueBooks>,
    ) -> Result<(Self, OtlpExport), String> {
        // One thread per export in flight: encoding a batch is CPU work, and
        // two batches encode side by side on two cores.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(concurrent.max(1))
            .thread_name("otel-export")
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the export runtime: {error}"))?;
        let channel = {
            // The channel's connection task is spawned on first use, on the
            // runtime current when it was built: ours.
            let _entered = runtime.enter();
            Endpoint::from_shared(endpoint.to_owned())
                .map_err(|error| format!("{endpoint} is not a URL: {error}"))?
                .timeout(timeout)
                .connect_lazy()
        };
        let exporter = Collector {
            grpc: tonic::client::Grpc::new(channel),
            headers,
            process: wire::Process::default(),
        };
        let in_flight = Arc::new(InFlight {
            busy: Mutex::new(0),
            changed: Condvar::new(),
            limit: concurrent.max(1),
        });
        let exporter = OtlpExport {
            inner: Arc::new(exporter),
            runtime: runtime.handle().clone(),
            timeout,
            health: Arc::new(Health {
                endpoint: endpoint.to_owned(),
                reachable: AtomicBool::new(true),
                last_failure: Mutex::new(None),
            }),
            books,
            in_flight: Arc::clone(&in_flight),
        };
        Ok((ExportRuntime { runtime, in_flight }, exporter))
    }

    /// Waits (at most `limit`) until no export is in flight: what a flush
    /// needs after the processor has handed over its last batch.
    pub(super) fn wait_idle(&self, limit: Duration) {
        self.in_flight.wait_idle(limit);
    }

    /// Stops the runtime without waiting: whatever it still runs is an
    /// export that has already had its time (its spans are counted as
    /// lost). Safe inside or outside another runtime (a plain `drop` would
    /// panic inside one).
    pub(super) fn stop(self) {
        self.runtime.shutdown_background();
    }
}

/// How many exports are on the wire, and a bell for when that changes.
#[derive(Debug)]
struct InFlight {
    busy: Mutex<usize>,
    changed: Condvar,
    limit: usize,
}

impl InFlight {
    /// Blocks the calling thread (the batch processor's) until an export
    /// may start. Every export ends within its time limit, or when the
    /// runtime stops, so the wait ends.
    fn start(self: &Arc<Self>) -> InFlightSlot {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= self.limit {
            busy = self.changed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
        InFlightSlot(Arc::clone(self))
    }

    fn wait_idle(&self, limit: Duration) {
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .changed
            .wait_timeout_while(busy, limit, |busy| *busy > 0);
    }
}

/// One export's place on the wire, given back when dropped.
struct InFlightSlot(Arc<InFlight>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy -= 1;
        self.0.changed.notify_all();
    }
}

/// One batch on the wire: its slot and its spans, which it settles in the
/// books. A batch dropped unsettled (the runtime stopped under it) is lost.
struct Batch {
    spans: usize,
    books: Arc<QueueBooks>,
    settled: bool,
    _slot: InFlightSlot,
}

impl Batch {
    /// Settles the batch: on success every span was exported but the ones
    /// the collector says it rejected, which are lost.
    fn settle(mut self, result: &Result<usize, OTelSdkError>) {
        self.settled = true;
        match result {
            Ok(rejected) => {
                let rejected = (*rejected).min(self.spans);
                self.books.exported(self.spans - rejected);
                self.books.lost(rejected);
            }
            Err(_) => self.books.lost(self.spans),
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.settled {
            self.books.lost(self.spans);
        }
    }
}

/// Whether the collector answers, as the last exports found.
#[derive(Debug)]
struct Health {
    endpoint: String,
    /// False from the first failed export until one succeeds again.
    reachable: AtomicBool,
    /// When the last export failed, to space out probes during an outage.
    last_failure: Mutex<Option<Instant>>,
}

impl Health {
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

    fn note(&self, result: &Result<usize, OTelSdkError>) {
        match result {
            Ok(_) => {
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

/// The collector's `TraceService`, called with requests `wire` encodes.
#[derive(Debug)]
struct Collector {
    /// A clone per export: clones share the channel (one connection).
    grpc: tonic::client::Grpc<Channel>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, sent with every request.
    headers: MetadataMap,
    /// The resource, encoded once.
    process: wire::Process,
}

impl Collector {
    /// Encodes `batch` and sends it, trying again (after a short wait)
    /// when the answer says a later try may succeed. Returns how many
    /// spans the collector rejected.
    async fn export(&self, batch: Vec<SpanData>) -> Result<usize, OTelSdkError> {
        let mut request = Vec::new();
        wire::encode_request(&self.process, &batch, &mut request);
        drop(batch);
        // Shared, not copied, by each try.
        let request = Bytes::from(request);
        let mut wait = FIRST_RETRY_AFTER;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.send(request.clone()).await {
                Ok(response) => {
                    let rejected = response
                        .partial_success
                        .map_or(0, |partial| partial.rejected_spans.max(0));
                    return Ok(usize::try_from(rejected).unwrap_or(usize::MAX));
                }
                Err(status) if tries <= RETRIES && may_succeed_later(status.code()) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(status) => {
                    return Err(OTelSdkError::InternalFailure(format!(
                        "export failed: {:?}: {}",
                        status.code(),
                        status.message()
                    )));
                }
            }
        }
    }

    async fn send(&self, request: Bytes) -> Result<ExportTraceServiceResponse, tonic::Status> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.headers.clone();
        let response = grpc
            .unary(
                request,
                http::uri::PathAndQuery::from_static(EXPORT_PATH),
                Encoded,
            )
            .await?;
        Ok(response.into_inner())
    }
}

/// The codes after which OTLP says a client may send the same request
/// again.
fn may_succeed_later(code: Code) -> bool {
    matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The codec of an export: the request is already encoded (its bytes are
/// copied into the call's body), the answer is decoded by prost.
#[derive(Debug, Clone, Copy)]
struct Encoded;

impl Codec for Encoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Encoded;
    type Decoder = ProstDecoder<ExportTraceServiceResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

impl Encoder for Encoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// The exporter the batch processor calls: starts each export on the
/// export runtime, within a time limit, and reports outages once.
#[derive(Debug)]
pub(super) struct OtlpExport {
    /// Shared with the exports in flight; alone again between exports.
    inner: Arc<Collector>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    health: Arc<Health>,
    books: Arc<QueueBooks>,
    in_flight: Arc<InFlight>,
}

impl SpanExporter for OtlpExport {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // These spans have left the queue, whatever happens to them now.
        self.books.taken(batch.len());
        if !self.health.should_attempt() {
            self.books.lost(batch.len());
            return Err(OTelSdkError::InternalFailure(
                "collector unreachable; batch dropped".into(),
            ));
        }
        let on_the_wire = Batch {
            spans: batch.len(),
            books: Arc::clone(&self.books),
            settled: false,
            // Waits here, on the processor's thread, while every slot is busy.
            _slot: self.in_flight.start(),
        };
        let inner = Arc::clone(&self.inner);
        let health = Arc::clone(&self.health);
        let timeout = self.timeout;
        // The export runs on the export runtime; the processor goes back to
        // its queue. The time limit is inside the task, so the task, its
        // slot and its hold on `inner` end with it.
        self.runtime.spawn(async move {
            let result = tokio::time::timeout(timeout, inner.export(batch))
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(timeout)));
            health.note(&result);
            on_the_wire.settle(&result);
        });
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        // The last batches were just started: let them finish (each within
        // its own time limit).
        self.in_flight.wait_idle(timeout.min(self.timeout));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, when the provider is built, before any export: the
        // exporter is not shared yet.
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.process = wire::Process::new(resource),
            None => tracing::debug!("resource set during an export: ignored"),
        }
    }
}
