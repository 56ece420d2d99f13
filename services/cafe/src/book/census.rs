//! The book counted, for the café's metrics: orders by status, the line,
//! who follows which order, the streams open. Read when Prometheus scrapes,
//! under the book's lock, from what the book holds anyway.
//!
//! Almost nothing here is kept for the metrics' sake: the line knows its
//! length, each order's `watch` channel knows how many follow it, the
//! board's `broadcast` channel how many watch it, the line's news how many
//! buzzers wait for it. A count read from the thing itself cannot drift
//! from it, and a leaked follower shows up in it whatever code path leaked
//! it. The one exception is `Tally`: how many orders ended, and how. An
//! ended order is forgotten after a while ([`super::FINISHED_ORDERS_KEPT`]),
//! so that count cannot be read back from the book: it is kept as the
//! changes happen, one relaxed atomic addition per order, under the lock
//! the change already holds.
//!
//! Counting costs one walk over the orders the book remembers (open ones
//! and up to [`super::FINISHED_ORDERS_KEPT`] finished ones), as `GetStats`
//! does: tens of microseconds once per scrape, not per order.

use std::sync::atomic::{AtomicU64, Ordering};

use cafe_domain::order::OrderStatus;

use super::OrderBook;

/// The book, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Orders waiting in line for a barista.
    pub in_line: usize,
    /// The most orders the line may hold (`--queue-capacity`).
    pub line_capacity: usize,
    /// Open orders still QUEUED (in line, or just handed to a barista).
    pub queued: usize,
    /// Open orders BREWING.
    pub brewing: usize,
    /// Orders ever placed.
    pub placed: u64,
    /// Orders that ended READY.
    pub ready: u64,
    /// Orders that ended CANCELLED.
    pub cancelled: u64,
    /// Orders that ended FAILED.
    pub failed: u64,
    /// Orders the book holds: the open ones and the finished ones kept.
    pub remembered: usize,
    /// Receivers of an order's changes: the customers following it
    /// (counter customers waiting, buzzer and `WatchOrder` streams) and the
    /// barista brewing it, who watches it for a cancel.
    pub followers: usize,
    /// Followers that show the line moving: buzzer and `WatchOrder`
    /// streams' tasks.
    pub buzzers: usize,
    /// `WatchBoard` streams' tasks.
    pub board_watchers: usize,
}

/// How many orders ended, by final status; see the module docs for why
/// this is the one count kept as it happens.
#[derive(Debug, Default)]
pub(super) struct Tally {
    ready: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    /// Notes an order's change to `status` (only final ones are counted;
    /// an order reaches a final status once).
    pub(super) fn changed(&self, status: OrderStatus) {
        let ended = match status {
            OrderStatus::Ready => &self.ready,
            OrderStatus::Cancelled => &self.cancelled,
            OrderStatus::Failed => &self.failed,
            OrderStatus::Queued | OrderStatus::Brewing => return,
        };
        ended.fetch_add(1, Ordering::Relaxed);
    }
}

impl OrderBook {
    /// The book counted (see the module docs), all under one lock so the
    /// numbers agree with each other: `placed` is the ended orders plus the
    /// open ones.
    pub fn census(&self) -> Census {
        let book = self.lock();
        let mut census = Census {
            in_line: book.line.len(),
            line_capacity: self.queue_capacity,
            ready: self.tally.ready.load(Ordering::Relaxed),
            cancelled: self.tally.cancelled.load(Ordering::Relaxed),
            failed: self.tally.failed.load(Ordering::Relaxed),
            buzzers: self.line_moves.followers(),
            board_watchers: self.board.receiver_count(),
            ..Census::default()
        };
        for entry in book.registry.iter() {
            census.remembered += 1;
            census.followers += entry.followers();
            match entry.status() {
                OrderStatus::Queued => census.queued += 1,
                OrderStatus::Brewing => census.brewing += 1,
                _ => {}
            }
        }
        census.placed = census.ready
            + census.cancelled
            + census.failed
            + (census.queued + census.brewing) as u64;
        census
    }
}
