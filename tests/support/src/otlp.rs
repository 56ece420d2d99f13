//! A tiny OTLP collector for tests: the real `TraceService` from
//! `opentelemetry-proto`, served by tonic on `127.0.0.1:0`, keeping every
//! span it receives so a test can wait until the spans it expects are there.
//!
//! Two variations for the export queue's tests and load runs: a collector
//! that only counts (a load run sends millions of spans), and one that can
//! be paused, so that a test can fill the queue while exports wait for an
//! answer, without depending on who is faster.
//!
//! It runs on a thread and a runtime of its own. The test's runtime may be
//! busy (or blocked in `Telemetry::flush`, which waits for the export that
//! this collector answers), and the collector must keep answering.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use grpc_telemetry::Telemetry;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value},
};
use prost::Message;
use tokio::sync::{oneshot, watch};
use tonic::{Request, Response, Status};

/// The kinds of span, as OTLP numbers them.
pub const KIND_INTERNAL: i32 = 1;
/// A server span.
pub const KIND_SERVER: i32 = 2;
/// A client span.
pub const KIND_CLIENT: i32 = 3;

/// OTLP status code for a span marked as failed.
pub const STATUS_ERROR: i32 = 2;

/// One span as the collector received it, in a shape easy to assert on.
#[derive(Debug, Clone)]
pub struct CollectedSpan {
    /// `service.name` of the process that sent it.
    pub service: String,
    /// Hex, as in `traceparent` and Jaeger links.
    pub trace_id: String,
    /// Hex.
    pub span_id: String,
    /// Hex; empty for a root span.
    pub parent_span_id: String,
    /// E.g. `cafe.v1.Cafe/OrderCoffee` or `queue.wait`.
    pub name: String,
    /// One of the `KIND_*` constants.
    pub kind: i32,
    /// Nanoseconds since the Unix epoch.
    pub start: u64,
    /// Nanoseconds since the Unix epoch.
    pub end: u64,
    /// Every attribute, its value as text.
    pub attributes: BTreeMap<String, String>,
    /// The span events' names, in order.
    pub events: Vec<String>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
}

impl CollectedSpan {
    /// An attribute's value as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// How long the span lasted.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end.saturating_sub(self.start))
    }
}

/// The collector; stops when dropped.
pub struct Collector {
    addr: SocketAddr,
    spans: watch::Receiver<Vec<CollectedSpan>>,
    received: Arc<AtomicU64>,
    largest_request: Arc<AtomicU64>,
    /// The metadata of the last export request.
    last_metadata: Arc<Mutex<tonic::metadata::MetadataMap>>,
    /// True while exports are answered; false while paused.
    answering: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
}

struct Receiver {
    spans: watch::Sender<Vec<CollectedSpan>>,
    /// Whether to keep the spans, or only count them.
    keep: bool,
    received: Arc<AtomicU64>,
    largest_request: Arc<AtomicU64>,
    last_metadata: Arc<Mutex<tonic::metadata::MetadataMap>>,
    answering: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        // While paused, the export waits here for its answer (or until the
        // exporter gives up and hangs up, which drops this future).
        let mut answering = self.answering.clone();
        let _ = answering.wait_for(|answering| *answering).await;
        *self
            .last_metadata
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = request.metadata().clone();
        let request = request.into_inner();
        self.largest_request
            .fetch_max(request.encoded_len() as u64, Ordering::Relaxed);
        if !self.keep {
            let count: usize = request
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .map(|scope| scope.spans.len())
                .sum();
            self.received.fetch_add(count as u64, Ordering::Relaxed);
            return Ok(Response::new(ExportTraceServiceResponse::default()));
        }
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(CollectedSpan {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        start: span.start_time_unix_nano,
                        end: span.end_time_unix_nano,
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                        events: span.events.into_iter().map(|event| event.name).collect(),
                        status_code: span.status.map_or(0, |status| status.code),
                    });
                }
            }
        }
        // `send_modify` wakes every test waiting in `wait_for`.
        self.received
            .fetch_add(received.len() as u64, Ordering::Relaxed);
        self.spans.send_modify(|spans| spans.extend(received));
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        other => format!("{other:?}"),
    }
}

impl Collector {
    /// Starts a collector on `127.0.0.1:0`, on its own thread.
    pub fn start() -> Collector {
        Collector::start_keeping(true)
    }

    /// A collector that counts the spans it receives ([`Collector::received`])
    /// and keeps none: for load runs.
    pub fn counting() -> Collector {
        Collector::start_keeping(false)
    }

    fn start_keeping(keep: bool) -> Collector {
        let (spans_tx, spans) = watch::channel(Vec::new());
        let received = Arc::new(AtomicU64::new(0));
        let largest_request = Arc::new(AtomicU64::new(0));
        let last_metadata = Arc::default();
        let (answering, answering_rx) = watch::channel(true);
        let receiver = Receiver {
            spans: spans_tx,
            keep,
            received: Arc::clone(&received),
            largest_request: Arc::clone(&largest_request),
            last_metadata: Arc::clone(&last_metadata),
            answering: answering_rx,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("test-collector".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("collector runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind the collector");
                    bound_tx
                        .send(listener.local_addr().expect("collector address"))
                        .expect("the test waits for the address");
                    let incoming = tonic::transport::server::TcpIncoming::from(listener);
                    let _ = tonic::transport::Server::builder()
                        // With tonic's default limit on a request's size (4 MiB),
                        // as real collectors have.
                        .add_service(TraceServiceServer::new(receiver))
                        .serve_with_incoming_shutdown(incoming, async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("start the collector thread");
        let addr = bound.recv().expect("the collector reports its address");
        Collector {
            addr,
            spans,
            received,
            largest_request,
            last_metadata,
            answering,
            stop: Some(stop),
        }
    }

    /// A header of the last export request, if it had it.
    pub fn last_header(&self, key: &str) -> Option<String> {
        let metadata = self
            .last_metadata
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(metadata.get(key)?.to_str().ok()?.to_owned())
    }

    /// The size of the largest export request so far, in bytes of protobuf.
    pub fn largest_request(&self) -> u64 {
        self.largest_request.load(Ordering::Relaxed)
    }

    /// How many spans have arrived so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// From now on, exports wait for their answer until [`Collector::resume`].
    pub fn pause(&self) {
        self.answering.send_replace(false);
    }

    /// Answers the exports that waited, and every export from now on.
    pub fn resume(&self) {
        self.answering.send_replace(true);
    }

    /// The OTLP/gRPC endpoint, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.borrow().clone()
    }

    /// Waits until the spans received satisfy `done`, and returns them all.
    /// Spans are exported in batches, so this asks `telemetry` to flush,
    /// then waits for news; spans that ended after a flush are picked up by
    /// the next one. Fails the test after 20 s, listing what did arrive.
    pub async fn wait_for(
        &self,
        telemetry: &Telemetry,
        what: &str,
        done: impl Fn(&[CollectedSpan]) -> bool,
    ) -> Vec<CollectedSpan> {
        self.wait_for_all(&[telemetry], what, done).await
    }

    /// [`Collector::wait_for`] with several telemetry stacks to flush (a
    /// café and a barista, each with its own).
    pub async fn wait_for_all(
        &self,
        telemetry: &[&Telemetry],
        what: &str,
        done: impl Fn(&[CollectedSpan]) -> bool,
    ) -> Vec<CollectedSpan> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut spans = self.spans.clone();
        loop {
            for telemetry in telemetry {
                telemetry.flush();
            }
            let arrived = tokio::time::timeout(
                Duration::from_millis(200),
                spans.wait_for(|spans| done(spans)),
            )
            .await;
            if let Ok(Ok(spans)) = arrived {
                return spans.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; spans received: {:#?}",
                self.spans()
                    .iter()
                    .map(|span| (&span.name, &span.trace_id))
                    .collect::<Vec<_>>()
            );
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
