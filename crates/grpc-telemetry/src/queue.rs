//! Every span accounted for: exported, dropped because the export queue was
//! full, or lost in an export that failed. Dropping spans is the right
//! thing for a service under a rush (waiting for the collector would slow
//! every order down), but it must never be silent.
//!
//! The SDK's batch span processor drops a span when its queue is full and
//! counts it, but keeps the count to itself (one warning at the first drop,
//! the total only at shutdown). So [`CountedQueue`] stands in front of it
//! and keeps the queue's books itself: a span is *queued* from the moment it
//! is handed to the processor until the processor hands its batch to the
//! exporter ([`SpanCounts::taken`]). When the books say the queue is full,
//! the span is dropped here, and counted, before the processor can drop it
//! uncounted. (The processor's own queue has the same capacity and holds
//! only spans counted as queued, so it never overflows.)
//!
//! The counts are read with [`super::Telemetry::span_counts`] (one
//! telemetry stack) and [`super::spans_dropped`] (the whole process, for a
//! benchmark's report); while spans are being dropped a warning says how
//! many, at most once per [`DROP_REPORT_EVERY`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry::Context;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{Span, SpanData, SpanProcessor},
};

/// While spans are being dropped, how often to say so.
pub const DROP_REPORT_EVERY: Duration = Duration::from_secs(5);

/// Spans dropped or lost by every telemetry stack of this process.
static PROCESS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Spans dropped or lost by every telemetry stack of this process so far.
pub(super) fn process_dropped() -> u64 {
    PROCESS_DROPPED.load(Ordering::Relaxed)
}

/// What happened to the spans of one telemetry stack, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanCounts {
    /// Delivered to the collector.
    pub exported: u64,
    /// Dropped on arrival: the export queue was full.
    pub dropped_queue_full: u64,
    /// Lost in an export that failed, timed out, or was skipped or cut off
    /// because the collector was unreachable or the process was exiting.
    pub lost_in_export: u64,
}

impl SpanCounts {
    /// Spans that did not reach the collector.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.lost_in_export
    }
}

/// The books of one stack's export queue, shared by [`CountedQueue`] (which
/// fills it) and the exporter (which empties it).
#[derive(Debug)]
pub(super) struct QueueBooks {
    capacity: usize,
    queued: AtomicUsize,
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    lost_in_export: AtomicU64,
    report: DropReport,
}

impl QueueBooks {
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(QueueBooks {
            capacity,
            queued: AtomicUsize::new(0),
            exported: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            lost_in_export: AtomicU64::new(0),
            report: DropReport::new(Instant::now()),
        })
    }

    /// Takes a place in the queue for one span; false when it is full.
    fn enter(&self) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < self.capacity).then_some(queued + 1)
            })
            .is_ok()
    }

    /// The processor handed `spans` to the exporter: their places are free.
    pub(super) fn taken(&self, spans: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                Some(queued.saturating_sub(spans))
            });
    }

    /// `spans` reached the collector.
    pub(super) fn exported(&self, spans: usize) {
        self.exported.fetch_add(spans as u64, Ordering::Relaxed);
    }

    /// `spans` were lost in an export.
    pub(super) fn lost(&self, spans: usize) {
        self.lost_in_export
            .fetch_add(spans as u64, Ordering::Relaxed);
        PROCESS_DROPPED.fetch_add(spans as u64, Ordering::Relaxed);
    }

    fn dropped_on_arrival(&self) {
        let total = self.dropped_queue_full.fetch_add(1, Ordering::Relaxed) + 1;
        PROCESS_DROPPED.fetch_add(1, Ordering::Relaxed);
        if let Some(since_last) = self.report.due(total, Instant::now()) {
            tracing::warn!(
                dropped = since_last,
                total,
                queue = self.capacity,
                "spans dropped: the trace export queue is full (the collector cannot keep up, \
                 or OTEL_BSP_MAX_QUEUE_SIZE is too small for this load); said at most every {}s",
                DROP_REPORT_EVERY.as_secs()
            );
        }
    }

    pub(super) fn counts(&self) -> SpanCounts {
        SpanCounts {
            exported: self.exported.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            lost_in_export: self.lost_in_export.load(Ordering::Relaxed),
        }
    }
}

/// When to report drops: at the first, then at most once per
/// [`DROP_REPORT_EVERY`]. Lock-free: many threads end spans at once, and
/// the one that wins the swap of `next_at` speaks.
#[derive(Debug)]
struct DropReport {
    started: Instant,
    /// Milliseconds since `started` before which nobody reports.
    next_at: AtomicU64,
    /// The total at the last report.
    reported: AtomicU64,
}

impl DropReport {
    fn new(started: Instant) -> Self {
        DropReport {
            started,
            next_at: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        }
    }

    /// With `total` drops so far at `now`: how many to report since the
    /// last report, if it is time to.
    fn due(&self, total: u64, now: Instant) -> Option<u64> {
        let now = now.saturating_duration_since(self.started).as_millis() as u64;
        let next_at = self.next_at.load(Ordering::Relaxed);
        if now < next_at {
            return None;
        }
        let every = DROP_REPORT_EVERY.as_millis() as u64;
        self.next_at
            .compare_exchange(next_at, now + every, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let reported = self.reported.swap(total, Ordering::AcqRel);
        Some(total.saturating_sub(reported))
    }
}

/// The span processor the provider sees: the SDK's batch processor, behind
/// a door that counts the spans it turns away.
#[derive(Debug)]
pub(super) struct CountedQueue<P> {
    inner: P,
    books: Arc<QueueBooks>,
}

impl<P> CountedQueue<P> {
    pub(super) fn new(inner: P, books: Arc<QueueBooks>) -> Self {
        CountedQueue { inner, books }
    }
}

impl<P: SpanProcessor> SpanProcessor for CountedQueue<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.books.enter() {
            self.inner.on_end(span);
        } else {
            self.books.dropped_on_arrival();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_reported_at_once_then_once_per_interval() {
        let start = Instant::now();
        let report = DropReport::new(start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(report.due(1, at(0)), Some(1), "the first drop is news");
        assert_eq!(report.due(2, at(10)), None);
        assert_eq!(report.due(500, at(4_999)), None);
        let every = DROP_REPORT_EVERY.as_millis() as u64;
        assert_eq!(
            report.due(501, at(every)),
            Some(500),
            "then how many since the last report"
        );
        assert_eq!(report.due(502, at(every + 1)), None);
    }

    #[test]
    fn the_books_never_let_the_queue_overflow() {
        let books = QueueBooks::new(3);
        assert!(books.enter() && books.enter() && books.enter());
        assert!(!books.enter(), "full");
        books.taken(2);
        assert!(books.enter() && books.enter());
        assert!(!books.enter());
        books.dropped_on_arrival();
        books.lost(4);
        books.exported(5);
        assert_eq!(
            books.counts(),
            SpanCounts {
                exported: 5,
                dropped_queue_full: 1,
                lost_in_export: 4
            }
        );
        assert_eq!(books.counts().dropped(), 5);
    }
}
