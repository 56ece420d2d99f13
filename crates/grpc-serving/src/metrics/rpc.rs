//! Every call timed, by method and gRPC status code: the
//! `grpc_server_handling_seconds` histogram (the name and labels of
//! go-grpc-prometheus, which existing dashboards know), and the calls open
//! right now by method, `grpc_server_calls_in_flight`.
//!
//! A call ends when its gRPC status is known, which for a stream is its
//! trailers: [`grpc_telemetry::outcome`] tells a [`TimedCall`] then, or `CANCELLED`
//! when the body is dropped before them (the call leaves the in-flight
//! gauge at that moment). A stream that nobody reads and that never ends
//! stays in flight, which is what the gauge is for.
//!
//! Each bucket keeps an OpenMetrics exemplar: the `trace_id` of the last
//! exported call that landed in it, so a slow bucket in Prometheus names a
//! trace to open (served only in the OpenMetrics format, which Prometheus
//! asks for; see docs/debugging.md).
//!
//! Methods are known in advance from the descriptor sets of what the server
//! serves, so a client sending made-up paths cannot create new series: they
//! are all filed under `grpc_service="unknown"`. Per call: a lookup in a map
//! built at start, the in-flight gauge up and down, two clock reads and one
//! histogram observation.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Instant,
};

use prometheus_client::{
    metrics::{exemplar::HistogramWithExemplars, family::Family, gauge::Gauge},
    registry::Registry,
};
use prost::Message;
use tonic::Code;

use grpc_telemetry::outcome::code_name;

/// Upper bounds of the duration buckets, in seconds: from a `GetMenu`
/// (well under a millisecond) to a buzzer waiting for a large tea at real
/// time (four and a half minutes). Longer streams (a board watched for an
/// hour) land in `+Inf`, and their sum still counts them.
pub const BUCKETS: [f64; 18] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// `grpc_service` and `grpc_method`.
type MethodLabels = [(&'static str, Arc<str>); 2];
/// `grpc_service`, `grpc_method` and `grpc_code`.
type CallLabels = [(&'static str, Arc<str>); 3];
/// An exemplar's labels: `trace_id`.
pub type TraceExemplar = [(&'static str, String); 1];
/// A histogram whose buckets name a trace each.
type Histogram = HistogramWithExemplars<TraceExemplar>;

/// The call metrics of one server, shared by every connection's layer.
#[derive(Debug)]
pub struct RpcMetrics {
    /// `/cafe.v1.Cafe/OrderCoffee` → that method's metrics.
    methods: HashMap<String, Arc<MethodMetrics>>,
    /// Every path that names no method the server serves.
    unknown: Arc<MethodMetrics>,
}

/// One method's metrics.
#[derive(Debug)]
struct MethodMetrics {
    labels: MethodLabels,
    durations: Family<CallLabels, Histogram, fn() -> Histogram>,
    /// This method's histogram for each status code, made the first time
    /// the code is seen (a method shows only the codes it has answered).
    by_code: [OnceLock<Histogram>; 17],
    in_flight: Gauge,
}

impl MethodMetrics {
    fn durations(&self, code: Code) -> &Histogram {
        self.by_code[code as usize].get_or_init(|| {
            let [service, method] = self.labels.clone();
            self.durations.get_or_create_owned(&[
                service,
                method,
                ("grpc_code", code_name(code).into()),
            ])
        })
    }
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS.into_iter())
}

impl RpcMetrics {
    /// Registers the call metrics of a server of `service` in `registry`:
    /// its methods (read from `descriptors`, its encoded descriptor set),
    /// and those of the health and reflection services every server has.
    pub(super) fn register(
        registry: &mut Registry,
        service: &str,
        descriptors: &[u8],
    ) -> Arc<Self> {
        let durations: Family<CallLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(new_histogram);
        let in_flight: Family<MethodLabels, Gauge> = Family::default();
        registry.register(
            "grpc_server_handling_seconds",
            // No full stop: the registry adds one.
            "How long calls took, from the request to their gRPC status (the trailers, for a stream), by method and status code",
            durations.clone(),
        );
        registry.register(
            "grpc_server_calls_in_flight",
            "Calls open now, by method: for streaming methods, the streams open",
            in_flight.clone(),
        );
        let method = |service: &str, method: &str| {
            let labels: MethodLabels = [
                ("grpc_service", service.into()),
                ("grpc_method", method.into()),
            ];
            Arc::new(MethodMetrics {
                // Every method shows in flight, 0 included: a series that
                // appears only when non-zero is hard to alert on.
                in_flight: in_flight.get_or_create_owned(&labels),
                labels,
                durations: durations.clone(),
                by_code: Default::default(),
            })
        };
        let mut methods = HashMap::new();
        for (service, name) in served_methods(service, descriptors) {
            methods.insert(format!("/{service}/{name}"), method(&service, &name));
        }
        RpcMetrics {
            methods,
            unknown: method("unknown", "unknown"),
        }
        .into()
    }

    /// Starts timing a call to `path`.
    pub fn start(&self, path: &str) -> TimedCall {
        let method = Arc::clone(self.methods.get(path).unwrap_or(&self.unknown));
        method.in_flight.inc();
        TimedCall {
            method,
            started: Instant::now(),
        }
    }
}

/// The services a server of `service` answers (it, health, reflection),
/// with each of their methods, read from their descriptor sets (its own
/// in `descriptors`).
fn served_methods(service: &str, descriptors: &[u8]) -> Vec<(String, String)> {
    let served = [
        service,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let sets = [
        descriptors,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = Vec::new();
    for set in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            for found in &file.service {
                let full_name = format!("{}.{}", file.package(), found.name());
                if served.contains(&full_name.as_str()) {
                    for method in &found.method {
                        methods.push((full_name.clone(), method.name().to_owned()));
                    }
                }
            }
        }
    }
    methods
}

/// One call, timed until its status is known.
#[derive(Debug)]
pub struct TimedCall {
    method: Arc<MethodMetrics>,
    started: Instant,
}

impl TimedCall {
    /// Files the call under `code`, with `trace_id` (its exported trace,
    /// if any) as its bucket's exemplar; it is no longer in flight.
    pub fn finish(self, code: Code, trace_id: Option<String>) {
        let seconds = self.started.elapsed().as_secs_f64();
        let exemplar = trace_id.map(|id| [("trace_id", id)]);
        self.method.durations(code).observe(seconds, exemplar, None);
        self.method.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        convert::Infallible,
        future::poll_fn,
        pin::Pin,
        task::{Context, Poll},
    };

    use http::HeaderMap;
    use http_body::{Body, Frame};
    use tower::ServiceExt;

    use super::*;
    use cafe_domain::proto::FILE_DESCRIPTOR_SET;
    use grpc_telemetry::outcome::{Observe, ObservedBody};

    use crate::calls::{OpenCalls, ServedCall, ServedCalls};

    /// A service watched as a server watches its calls, timed in `metrics`.
    fn timed<S>(service: S, metrics: &Arc<RpcMetrics>) -> Observe<S, ServedCalls> {
        let watched = ServedCalls::new(OpenCalls::default(), Some(Arc::clone(metrics)));
        Observe::new(service, watched)
    }

    #[test]
    fn code_names_follow_the_spec() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }

    #[test]
    fn a_server_knows_its_methods_and_no_others() {
        let methods = served_methods("cafe.v1.Cafe", FILE_DESCRIPTOR_SET);
        let has = |service: &str, method: &str| {
            methods
                .iter()
                .any(|(s, m)| s.as_str() == service && m.as_str() == method)
        };
        assert!(has("cafe.v1.Cafe", "OrderWithBuzzer"));
        assert!(has("grpc.health.v1.Health", "Watch"));
        assert!(has(
            "grpc.reflection.v1.ServerReflection",
            "ServerReflectionInfo"
        ));
        assert!(!has("cafe.v1.Barista", "Brew"), "not served by the café");
    }

    /// A response body of ready frames.
    struct Frames(VecDeque<Frame<&'static [u8]>>);

    impl Body for Frames {
        type Data = &'static [u8];
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }
    }

    /// A message, then trailers with `grpc-status: code`.
    fn stream_ending_with(code: &'static str) -> Frames {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", code.parse().unwrap());
        Frames(VecDeque::from([
            Frame::data(&b"message"[..]),
            Frame::trailers(trailers),
        ]))
    }

    async fn read_to_end(mut body: ObservedBody<Frames, ServedCall>) {
        while poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .is_some()
        {}
    }

    /// How many calls to `method` the registry has filed under `code`: its
    /// `_count` line as the OpenMetrics endpoint writes it (0 if none).
    fn count(registry: &Registry, method: &str, code: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        let labels = format!("grpc_method=\"{method}\",grpc_code=\"{code}\"}}");
        text.lines()
            .filter(|line| line.starts_with("grpc_server_handling_seconds_count{"))
            .find(|line| line.contains(&labels))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_bucket_names_the_trace_of_an_exported_call_and_no_other() {
        let mut registry = Registry::default();
        let metrics = RpcMetrics::register(&mut registry, "cafe.v1.Cafe", FILE_DESCRIPTOR_SET);
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        metrics
            .start("/cafe.v1.Cafe/OrderCoffee")
            .finish(Code::Ok, Some(trace_id.into()));
        // Not exported: counted, but no exemplar.
        metrics
            .start("/cafe.v1.Cafe/GetMenu")
            .finish(Code::Ok, None);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let with_exemplar: Vec<&str> = text.lines().filter(|line| line.contains(" # {")).collect();
        assert_eq!(with_exemplar.len(), 1, "{text}");
        assert!(
            with_exemplar[0].contains("grpc_method=\"OrderCoffee\""),
            "{text}"
        );
        assert!(
            with_exemplar[0].contains(&format!("# {{trace_id=\"{trace_id}\"}}")),
            "{text}"
        );
        assert_eq!(count(&registry, "GetMenu", "OK"), 1);
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn a_stream_ends_at_its_trailers_and_a_dropped_one_is_cancelled() {
        let mut registry = Registry::default();
        let metrics = RpcMetrics::register(&mut registry, "cafe.v1.Cafe", FILE_DESCRIPTOR_SET);
        let handler = tower::service_fn(|_request: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(stream_ending_with("5")))
        });
        let service = timed(handler, &metrics);
        let watch = &metrics.methods["/cafe.v1.Cafe/WatchOrder"];

        // Read to the end: NOT_FOUND (5), from the trailers.
        let response = service
            .clone()
            .oneshot(request("/cafe.v1.Cafe/WatchOrder"))
            .await
            .unwrap();
        assert_eq!(watch.in_flight.get(), 1, "open until its trailers");
        read_to_end(response.into_body()).await;
        assert_eq!(watch.in_flight.get(), 0);
        assert_eq!(count(&registry, "WatchOrder", "NOT_FOUND"), 1);

        // Dropped before its trailers: CANCELLED.
        let response = service
            .clone()
            .oneshot(request("/cafe.v1.Cafe/WatchOrder"))
            .await
            .unwrap();
        assert_eq!(watch.in_flight.get(), 1);
        drop(response);
        assert_eq!(watch.in_flight.get(), 0);
        assert_eq!(count(&registry, "WatchOrder", "CANCELLED"), 1);
    }

    #[tokio::test]
    async fn an_error_answered_at_once_ends_at_its_headers_and_made_up_paths_share_one_series() {
        let mut registry = Registry::default();
        let metrics = RpcMetrics::register(&mut registry, "cafe.v1.Cafe", FILE_DESCRIPTOR_SET);
        let refuses = tower::service_fn(|_request: http::Request<()>| async {
            let mut response = http::Response::new(Frames(VecDeque::new()));
            response
                .headers_mut()
                .insert("grpc-status", "12".parse().unwrap());
            Ok::<_, Infallible>(response)
        });
        let service = timed(refuses, &metrics);
        for path in ["/made.up/Path", "/another/One"] {
            let response = service.clone().oneshot(request(path)).await.unwrap();
            assert_eq!(metrics.unknown.in_flight.get(), 0, "over at its headers");
            drop(response);
        }
        assert_eq!(count(&registry, "unknown", "UNIMPLEMENTED"), 2);
        assert_eq!(count(&registry, "unknown", "CANCELLED"), 0);
        assert_eq!(
            metrics.methods.len(),
            served_methods("cafe.v1.Cafe", FILE_DESCRIPTOR_SET).len()
        );
    }
}
