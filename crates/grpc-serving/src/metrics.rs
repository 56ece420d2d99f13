//! Metrics for Prometheus: what an operator watches a server by, served
//! over HTTP at `/metrics` when `--metrics-listen` is given.
//!
//! Two kinds of numbers, gathered two ways:
//!
//! - **What happens** (a call finished, how long it took, with what status)
//!   can only be seen as it passes, so it is recorded then: [`rpc`] times
//!   every call and files it by method and gRPC status code. That is the
//!   one place the metrics cost anything per call.
//! - **What is** (orders in line, streams open, tasks alive, baristas free)
//!   is a state the server already holds. It is read from there when
//!   Prometheus scrapes, by a [`Collector`] each server registers: nothing
//!   is kept up to date on the hot path for it, and a gauge read from the
//!   state cannot drift from it the way a gauge kept by hand can.
//!
//! Each server has a registry of its own ([`Metrics`]), not a process-wide
//! one: a test (or the CLI's `demo`) that runs several servers in one
//! process sees each one's numbers apart. Only [`process`]'s numbers (live
//! tasks of the runtime, memory, dropped spans) are shared by whatever runs
//! in the process.
//!
//! Why `prometheus-client` rather than the `metrics` facade, and every
//! metric with what it tells an operator: `docs/metrics.md`.
//!
//! # Layout
//! - this module: [`Metrics`], the registry a server fills before it
//!   serves, and [`gauge`], [`gauges`] and [`counter`], the few lines a
//!   collector needs to write one number.
//! - [`rpc`]: every call timed by method and status.
//! - [`process`]: what every server reports alike: the runtime's live
//!   tasks, memory and file descriptors, dropped spans.
//! - [`endpoint`]: `/metrics` over HTTP/1.1.

pub mod endpoint;
pub mod process;
pub mod rpc;

use std::{fmt, sync::Arc};

pub use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use prometheus_client::{
    encoding::{EncodeCounterValue, EncodeGaugeValue, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

use rpc::RpcMetrics;
pub use rpc::TraceExemplar;

/// A histogram whose buckets each name a trace (an OpenMetrics exemplar),
/// with the call durations' bucket bounds ([`rpc::BUCKETS`]).
pub type TracedHistogram =
    prometheus_client::metrics::exemplar::HistogramWithExemplars<TraceExemplar>;

/// A new [`TracedHistogram`], empty.
pub fn traced_histogram() -> TracedHistogram {
    TracedHistogram::new(rpc::BUCKETS.into_iter())
}

/// Writes `histogram` as `name`, with its exemplars (OpenMetrics only).
pub fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    histogram: &TracedHistogram,
) -> fmt::Result {
    use prometheus_client::encoding::EncodeMetric;
    histogram.encode(encoder.encode_descriptor(name, help, None, MetricType::Histogram)?)
}

/// One server's metrics: the calls' durations, its own collectors and the
/// process's numbers, before they are served.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the numbers every server reports ([`process`]).
    /// Call inside the server's runtime: the live tasks counted are that
    /// runtime's.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(process::ProcessCollector::current()));
        Metrics { registry }
    }

    /// Adds a collector, asked for its numbers at every scrape.
    pub fn register_collector(&mut self, collector: impl Collector) {
        self.registry.register_collector(Box::new(collector));
    }

    /// The call metrics of a server of `service` (e.g. `cafe.v1.Cafe`),
    /// described by `descriptors` (its encoded descriptor set), registered
    /// here; each call is timed by [`crate::calls::ServedCalls`].
    pub fn rpc(&mut self, service: &str, descriptors: &[u8]) -> Arc<RpcMetrics> {
        RpcMetrics::register(&mut self.registry, service, descriptors)
    }

    /// Everything, in the OpenMetrics text format (what Prometheus asks
    /// for first).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, and our collectors do not either.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The registry, for the endpoint to encode at each scrape.
    fn into_registry(self) -> Arc<Registry> {
        Arc::new(self.registry)
    }
}

/// Writes one gauge without labels: `name` is the number `value` now.
pub fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// Writes one gauge with a value per value of the label `label`, e.g.
/// `cafe_orders{status="queued"}` and `cafe_orders{status="brewing"}`.
pub fn gauges<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'static str, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (label_value, value) in values {
        family
            .encode_family(&[(label, label_value)])?
            .encode_gauge(&value)?;
    }
    Ok(())
}

/// Writes one counter, `name` without its `_total` (the encoder adds it),
/// with a value per value of `label` (none if `label` is `None`).
pub fn counter<V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: Option<&str>,
    values: impl IntoIterator<Item = (&'static str, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (label_value, value) in values {
        match label {
            Some(label) => family
                .encode_family(&[(label, label_value)])?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            None => family.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
            gauge(&mut encoder, "test_depth", "Depth.", 3u64)?;
            gauges(
                &mut encoder,
                "test_orders",
                "Orders.",
                "status",
                [("queued", 2i64), ("brewing", 1)],
            )?;
            counter(&mut encoder, "test_done", "Done.", None, [("", 7u64)])?;
            counter(
                &mut encoder,
                "test_ended",
                "Ended.",
                Some("status"),
                [("ready", 5u64)],
            )
        }
    }

    #[tokio::test]
    async fn collectors_write_gauges_and_counters() {
        let mut metrics = Metrics::new();
        metrics.register_collector(Fixed);
        let text = metrics.encode();
        for line in [
            "# TYPE test_depth gauge\ntest_depth 3\n",
            "test_orders{status=\"queued\"} 2\n",
            "test_orders{status=\"brewing\"} 1\n",
            "# TYPE test_done counter\ntest_done_total 7\n",
            "test_ended_total{status=\"ready\"} 5\n",
            "# TYPE tokio_alive_tasks gauge\n",
            "# EOF\n",
        ] {
            assert!(text.contains(line), "{line:?} is not in\n{text}");
        }
    }
}
