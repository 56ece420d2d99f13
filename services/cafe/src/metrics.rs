//! What the café tells Prometheus beside what every server does (calls by
//! method and status, live tasks: [`grpc_serving::metrics`]): its line, its
//! orders by status, the streams open, and its remote baristas. All read
//! from the book when scraped ([`OrderBook::census`]); and, observed as each
//! order is made READY ([`PhaseTimes`]), how long it waited in line and
//! brewed, each bucket naming the trace of an order in it. Every metric is
//! described in `docs/metrics.md`.

use std::{fmt, sync::Arc};

use cafe_domain::order::Order;
use grpc_serving::metrics::{
    Collector, DescriptorEncoder, TracedHistogram, counter, gauge, gauges, histogram,
    traced_histogram,
};
use opentelemetry::trace::TraceContextExt;

use crate::{book::OrderBook, remote::ReplicasUp};

/// The café's own gauges; registered by `startup` with
/// `Server::register_collector`.
#[derive(Debug)]
pub struct CafeCollector {
    book: Arc<OrderBook>,
    /// With remote baristas: how many are up.
    remote: Option<ReplicasUp>,
    /// The orders' phases, observed by the order seam.
    phases: PhaseTimes,
}

impl CafeCollector {
    /// Reads `book` and, with remote baristas, `remote`.
    pub fn new(book: Arc<OrderBook>, remote: Option<ReplicasUp>) -> Self {
        CafeCollector {
            book,
            remote,
            phases: PhaseTimes::default(),
        }
    }

    /// Also serves `phases` (the ones the café's `Orders` observe).
    pub fn with_phases(mut self, phases: PhaseTimes) -> Self {
        self.phases = phases;
        self
    }
}

/// How long READY orders waited in line and brewed, as histograms whose
/// buckets name the trace of an order in them (when the café exports its
/// traces). Clones share the histograms: `Orders` observes, the collector
/// serves.
#[derive(Debug, Clone)]
pub struct PhaseTimes {
    queue_wait: TracedHistogram,
    brew: TracedHistogram,
}

impl Default for PhaseTimes {
    fn default() -> Self {
        PhaseTimes {
            queue_wait: traced_histogram(),
            brew: traced_histogram(),
        }
    }
}

impl PhaseTimes {
    /// Observes `order`, just made READY, whose trace is `trace`: its
    /// wait from placed to started, and its brew from started to ready.
    pub fn observe_ready(&self, order: &Order, trace: &opentelemetry::Context) {
        let (Some(started), Some(ready)) = (order.started_at, order.ready_at) else {
            return;
        };
        // Only this café's own span, sampled: then the trace was exported.
        // (Without export the context is the caller's, which we never sent.)
        let span = trace.span();
        let context = span.span_context();
        let exemplar = || {
            (context.is_valid() && context.is_sampled() && !context.is_remote())
                .then(|| [("trace_id", context.trace_id().to_string())])
        };
        let seconds = |from: std::time::SystemTime, to: std::time::SystemTime| {
            to.duration_since(from).unwrap_or_default().as_secs_f64()
        };
        self.queue_wait
            .observe(seconds(order.placed_at, started), exemplar(), None);
        self.brew.observe(seconds(started, ready), exemplar(), None);
    }
}

impl Collector for CafeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let census = self.book.census();
        gauge(
            &mut encoder,
            "cafe_queue_depth",
            "Orders waiting in line for a barista.",
            census.in_line as u64,
        )?;
        gauge(
            &mut encoder,
            "cafe_queue_capacity",
            "The most orders the line holds (--queue-capacity); past it new orders get RESOURCE_EXHAUSTED.",
            census.line_capacity as u64,
        )?;
        gauges(
            &mut encoder,
            "cafe_orders",
            "Open orders by status: brewing is the brews in flight.",
            "status",
            [
                ("queued", census.queued as u64),
                ("brewing", census.brewing as u64),
            ],
        )?;
        counter(
            &mut encoder,
            "cafe_orders_placed",
            "Orders placed (a retry with the same request_id is not a new order).",
            None,
            [("", census.placed)],
        )?;
        counter(
            &mut encoder,
            "cafe_orders_ended",
            "Orders that reached a final status, by that status.",
            Some("status"),
            [
                ("ready", census.ready),
                ("cancelled", census.cancelled),
                ("failed", census.failed),
            ],
        )?;
        gauge(
            &mut encoder,
            "cafe_orders_remembered",
            "Orders the café holds in memory: the open ones and the newest finished ones (at most 10,000).",
            census.remembered as u64,
        )?;
        gauge(
            &mut encoder,
            "cafe_order_followers",
            "Receivers of orders' changes: customers following an order (counter calls waiting, buzzer and WatchOrder streams), and the barista brewing each order, who watches it for a cancel.",
            census.followers as u64,
        )?;
        gauge(
            &mut encoder,
            "cafe_buzzers_open",
            "Buzzer and WatchOrder streams still following their order.",
            census.buzzers as u64,
        )?;
        gauge(
            &mut encoder,
            "cafe_board_watchers",
            "WatchBoard streams whose task is still sending the board.",
            census.board_watchers as u64,
        )?;
        histogram(
            &mut encoder,
            "cafe_order_queue_wait_seconds",
            "How long READY orders waited in line, from placed to a barista starting them; each bucket's exemplar names an order's trace.",
            &self.phases.queue_wait,
        )?;
        histogram(
            &mut encoder,
            "cafe_order_brew_seconds",
            "How long READY orders brewed, from started to ready; each bucket's exemplar names an order's trace.",
            &self.phases.brew,
        )?;
        if let Some(remote) = &self.remote {
            gauge(
                &mut encoder,
                "cafe_remote_baristas_up",
                "Remote barista replicas up (healthy, and no brew has seen them fail since); 0 means no order is taken.",
                remote.get() as u64,
            )?;
            let (slots, free) = remote.slots();
            gauge(
                &mut encoder,
                "cafe_remote_barista_slots",
                "Baristas of the remote replicas up (their --baristas, read with GetStation): the most drinks the café has in flight.",
                slots as u64,
            )?;
            gauge(
                &mut encoder,
                "cafe_remote_barista_slots_free",
                "Of those, the ones the café may still give a drink to; 0 with orders queued means the line waits for the replicas.",
                free as u64,
            )?;
        }
        Ok(())
    }
}
