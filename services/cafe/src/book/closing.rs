//! Closing the café: what becomes of the orders still in line, and of the
//! drinks the shutdown grace cuts short, as the store chose ([`OnClose`]).
//!
//! A café whose store keeps its orders (a journal) ends no open order when
//! it closes: a rolling restart on the same store must lose nothing, as a
//! `kill -9` does not. The orders in line stay QUEUED, the drinks the grace
//! cuts short stay BREWING (the restart brews them again first), and their
//! followers end with the order still open ([`OrderBook::left_for_restart`]),
//! so the handlers tell the customers how to come back. With the memory
//! store nothing would survive, so closing cancels the line and the grace's
//! end fails what is left, telling the customers why. On a shared line the
//! other cafés brew what waits.

use std::sync::Arc;

use cafe_domain::order::OrderStatus;
use tokio::sync::watch;

use super::{OrderBook, entry::OrderEntry};

/// What a closing café does with the orders still in line: the store's
/// choice, made when the book is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnClose {
    /// Cancels them, telling their customers: nothing would survive the
    /// process anyway (the memory store).
    Cancel,
    /// Keeps them, QUEUED, for the restart on the same store; their
    /// followers end ([`OrderBook::left_for_restart`]), and what the grace
    /// cuts short stays BREWING ([`OrderBook::grace_over`]).
    KeepForRestart,
    /// Leaves them in a line shared with other cafés, who brew them.
    LeaveToOthers,
}

/// Which open orders a closing café leaves in its store for the restart,
/// rather than ending them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    /// None: the café is open, or ends what it cannot finish.
    Nothing,
    /// The orders still in line (from closing on).
    Line,
    /// Every open order: the grace ran out with drinks still brewing.
    Unfinished,
}

impl OrderBook {
    /// Puts a queued order taken out of the line back at its own place (its
    /// ticket: usually the front), as if it had never left. A remote barista
    /// turned it away before starting it (see [`crate::remote`]), and it
    /// waits in the café's line, the only line, for the next free barista.
    /// Returns false if the order is no longer queued (it ended meanwhile).
    ///
    /// A café closing empties its line as [`OrderBook::close`] says; if it
    /// closed before the order got back, the order ends the same way here:
    /// cancelled with the memory store, kept in line with a journal.
    pub fn put_back(&self, entry: &Arc<OrderEntry>, closing_note: &str) -> bool {
        let mut book = self.lock();
        if entry.status() != OrderStatus::Queued {
            return false;
        }
        if self.availability.is_closed() && !self.keeps_line() {
            return self.end(&mut book, entry, OrderStatus::Cancelled, closing_note);
        }
        if book.line.insert(entry.ticket(), Arc::clone(entry)).is_err() {
            return true; // already back in line
        }
        self.line_moves.moved(book.line.len());
        drop(book);
        // As when an order is placed: wake whoever takes from the line.
        self.work.notify_one();
        true
    }

    /// Whether the café has closed.
    pub fn is_closed(&self) -> bool {
        self.availability.is_closed()
    }

    /// Resolves when the café closes.
    pub async fn closed(&self) {
        self.availability.closed().await
    }

    /// Whether closing keeps the open orders for a restart rather than
    /// ending them.
    pub(super) fn keeps_line(&self) -> bool {
        self.on_close == OnClose::KeepForRestart
    }

    /// Whether `entry` is left in the store for the café's restart: the
    /// café closed keeping its line and the order is still in it, or the
    /// grace ran out before it was finished. Its followers end here
    /// ([`super::Follower::next`] returns `None` with the order still open).
    pub fn left_for_restart(&self, entry: &OrderEntry) -> bool {
        match *self.kept.borrow() {
            Kept::Nothing => false,
            Kept::Line => self.position(entry).is_some(),
            Kept::Unfinished => !entry.status().is_final(),
        }
    }

    /// Woken whenever more orders are left for the restart: what a
    /// follower waits on beside its own order.
    pub(super) fn kept_changes(&self) -> watch::Receiver<Kept> {
        self.kept.subscribe()
    }

    /// The shutdown grace ran out with drinks still brewing: what is open
    /// is ended, or kept, as [`OnClose`] says. With the memory store every
    /// open order fails with `reason`, so no buzzer or counter customer is
    /// left waiting for a drink that will never come; with a journal each
    /// is left in the store as it is, for the restart (a drink still
    /// brewing is brewed again first), and its followers end; on a shared
    /// line the book does nothing (the store hands the drinks back).
    /// Returns how many orders it failed or kept.
    pub fn grace_over(&self, reason: &str) -> usize {
        let mut book = self.lock();
        let open: Vec<Arc<OrderEntry>> = book
            .registry
            .iter()
            .filter(|entry| !entry.status().is_final())
            .cloned()
            .collect();
        match self.on_close {
            OnClose::Cancel => open
                .iter()
                .filter(|entry| self.end(&mut book, entry, OrderStatus::Failed, reason))
                .count(),
            OnClose::KeepForRestart => {
                self.kept.send_replace(Kept::Unfinished);
                open.len()
            }
            OnClose::LeaveToOthers => 0,
        }
    }

    /// Closes the café: no new orders; idle baristas go home, busy ones
    /// finish their drink first; board streams end. Returns how many
    /// queued orders were cancelled.
    ///
    /// What becomes of the orders still in line depends on the store:
    /// - with the memory store, they are cancelled (their customers are
    ///   told why): nothing would survive the process anyway;
    /// - with a durable store (a journal), nothing is cancelled: they stay
    ///   QUEUED in the store, in their order, and the restart brews them
    ///   ([`OrderBook::restore`]). Their followers end at once
    ///   ([`OrderBook::left_for_restart`]), and the handlers tell the
    ///   customers to come back (`UNAVAILABLE`);
    /// - on a shared line, nothing is cancelled either: the line is every
    ///   café's, and the others brew what waits in it.
    pub fn close(&self, reason: &str) -> usize {
        // Closed first, then the line emptied under the lock: an order
        // placed meanwhile is either refused or in the line emptied here.
        self.availability.close();
        if self.on_close == OnClose::LeaveToOthers {
            self.work.notify_waiters();
            return 0;
        }
        if self.keeps_line() {
            self.kept.send_replace(Kept::Line);
            self.work.notify_waiters();
            return 0;
        }
        let cancelled = {
            let mut book = self.lock();
            let waiting: Vec<Arc<OrderEntry>> = book.line.iter().cloned().collect();
            waiting
                .iter()
                .filter(|entry| self.end(&mut book, entry, OrderStatus::Cancelled, reason))
                .count()
        };
        self.work.notify_waiters();
        cancelled
    }
}
