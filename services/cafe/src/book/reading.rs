//! Reading the book: an order by id, its place in line, the board, the
//! counts for `GetStats`, and following one order ([`Follower`]).

use std::sync::Arc;

use cafe_domain::order::OrderStatus;
use tokio::sync::broadcast;

use super::{
    OrderBook, Ticket,
    entry::{OrderEntry, Update},
    follow::{Follower, Replay},
};
use crate::error::CafeError;

/// The book's counts, for `GetStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Orders waiting in line.
    pub queued: usize,
    /// Orders a barista is brewing.
    pub brewing: usize,
}

impl OrderBook {
    /// The order with this id.
    pub fn get(&self, id: &str) -> Result<Arc<OrderEntry>, CafeError> {
        self.lock()
            .registry
            .get(id)
            .cloned()
            .ok_or_else(|| CafeError::OrderNotFound(id.to_owned()))
    }

    /// The order's place in line now (1 is next), if it is in the line.
    pub fn position(&self, entry: &OrderEntry) -> Option<u32> {
        self.lock().line.position(entry.ticket())
    }

    /// Every order that has not ended yet, oldest first, and a receiver for
    /// every change from this moment on. Taken under one lock, so no change
    /// falls between the two.
    pub fn watch_board(&self) -> (Vec<Update>, broadcast::Receiver<Update>) {
        let book = self.lock();
        let receiver = self.board.subscribe();
        let mut open: Vec<(Ticket, Update)> = book
            .registry
            .iter()
            .filter_map(|entry| {
                let mut now = entry.latest();
                if now.status.is_final() {
                    return None;
                }
                if let Some(position) = book.line.position(entry.ticket()) {
                    now.queue_position = position;
                }
                let update = Update {
                    order: entry.order_at(&now),
                    queue_position: now.queue_position,
                    seq: now.seq,
                };
                Some((entry.ticket(), update))
            })
            .collect();
        // Tickets are handed out in placing order.
        open.sort_by_key(|(ticket, _)| *ticket);
        (
            open.into_iter().map(|(_, update)| update).collect(),
            receiver,
        )
    }

    /// Follows an order's changes (see [`Follower`]).
    pub fn follow(self: &Arc<Self>, entry: Arc<OrderEntry>, from: Replay) -> Follower {
        Follower::new(Arc::clone(self), entry, from)
    }

    /// How many orders are waiting in line.
    pub fn queue_len(&self) -> usize {
        self.lock().line.len()
    }

    /// How many orders are in line and being brewed, counted under one lock
    /// so the two agree. Brewing orders are counted by a walk over the
    /// orders the book remembers: fine for `GetStats`, not for a hot path.
    pub fn counts(&self) -> Counts {
        let book = self.lock();
        Counts {
            queued: book.line.len(),
            brewing: book
                .registry
                .iter()
                .filter(|entry| entry.status() == OrderStatus::Brewing)
                .count(),
        }
    }
}
