//! The OTLP/gRPC client: a batch of finished spans, converted to OTLP,
//! encoded once, and sent to the collector's `TraceService/Export`.
//!
//! Why not `opentelemetry-otlp`'s exporter? It converts each batch inside
//! its retry loop, so that a retry can convert it again: before every
//! attempt it deep-copies the whole batch (every span's name, attributes
//! and events), converts the copy, and drops the original afterwards.
//! Measured with the café exporting flat out (callgrind, 5 spans per
//! order): the copy and its drop were about 27k instructions per order, of
//! the 92k the whole export took. Here the batch is *moved* into
//! its OTLP form (`opentelemetry-proto`'s own conversion, the one that
//! exporter uses), encoded once into bytes, and a retry sends the same
//! bytes again: a reference count, not a copy.
//!
//! The rest is what that exporter did: a lazily connected tonic channel
//! (the first export connects; a collector that comes later is found by the
//! next one), a time limit per request, and two quick retries (100 ms, then
//! 200 ms later) for the failures the OTLP specification calls retryable,
//! such as a collector restarting.

use std::time::Duration;

use http::uri::PathAndQuery;
use opentelemetry_proto::{
    tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    transform::{
        common::tonic::ResourceAttributesWithSchema,
        trace::tonic::group_spans_by_resource_and_scope,
    },
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use prost::{Message, bytes::Bytes};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

/// Retries after the first attempt.
const MAX_RETRIES: u32 = 2;
/// The wait before the first retry; it doubles for the next.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// OTLP's one trace method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A client for one collector.
#[derive(Debug)]
pub(super) struct OtlpClient {
    /// Cloned per request (a handle onto one connection).
    grpc: tonic::client::Grpc<Channel>,
    /// The service's resource (its name, `OTEL_RESOURCE_ATTRIBUTES`),
    /// sent with every batch.
    resource: ResourceAttributesWithSchema,
}

impl OtlpClient {
    /// A client for `endpoint` (a URL with its scheme), each request within
    /// `timeout`. Must be called inside the export runtime: the channel's
    /// connection task is spawned there. Fails if the endpoint is not a URL.
    pub(super) fn new(endpoint: &str, timeout: Duration) -> Result<Self, String> {
        let channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|error| format!("invalid endpoint {endpoint:?}: {error}"))?
            .timeout(timeout)
            .connect_lazy();
        Ok(OtlpClient {
            grpc: tonic::client::Grpc::new(channel),
            resource: ResourceAttributesWithSchema::default(),
        })
    }

    /// Sets the resource sent with every batch (the provider's, once, before
    /// any export).
    pub(super) fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }

    /// Sends `batch`: Ok with the spans the collector said it rejected (a
    /// partial success, usually none), or the last attempt's error.
    pub(super) async fn export(&self, batch: Vec<SpanData>) -> Result<u64, Status> {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        let body = Bytes::from(request.encode_to_vec());
        // The converted spans are no longer needed: only their bytes travel.
        drop(request);
        let mut delay = FIRST_RETRY_DELAY;
        let mut retries = 0;
        loop {
            match self.send(body.clone()).await {
                Ok(response) => {
                    return Ok(response
                        .partial_success
                        .map_or(0, |partial| partial.rejected_spans.max(0) as u64));
                }
                Err(status) if retries < MAX_RETRIES && retryable(status.code()) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    retries += 1;
                }
                Err(status) => return Err(status),
            }
        }
    }

    /// One attempt.
    async fn send(&self, body: Bytes) -> Result<ExportTraceServiceResponse, Status> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|error| Status::unavailable(format!("collector not ready: {error}")))?;
        let response = grpc
            .unary(
                tonic::Request::new(body),
                PathAndQuery::from_static(EXPORT_PATH),
                EncodedExport,
            )
            .await?;
        Ok(response.into_inner())
    }
}

/// The failures worth a retry, as the OTLP specification lists them (a
/// `RESOURCE_EXHAUSTED` only with a retry delay from the collector, which
/// this client does not read: it is not retried).
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss
    )
}

/// The codec of one export: the request goes out as the bytes it was
/// encoded to, the answer is decoded as OTLP's response.
#[derive(Debug, Clone, Copy, Default)]
struct EncodedExport;

impl Codec for EncodedExport {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = EncodedExport;
    type Decoder = EncodedExport;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedExport
    }

    fn decoder(&mut self) -> Self::Decoder {
        EncodedExport
    }
}

impl Encoder for EncodedExport {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use prost::bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

impl Decoder for EncodedExport {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|error| Status::internal(format!("unreadable export response: {error}")))
    }
}
