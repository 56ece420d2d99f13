//! Following one order: the one loop every RPC that waits for an order
//! uses (`OrderCoffee` at the counter, `OrderWithBuzzer`, `WatchOrder`).
//!
//! A [`Follower`] yields the order's changes in order, each exactly once,
//! however late its reader looks: a slow reader still sees BREWING before
//! READY, because the history keeps every change. It ends after the final
//! status.
//!
//! A follower that shows the line ([`Follower::with_positions`], a buzzer)
//! also yields the order's new place while it waits, as often as
//! [`super::line_moves`] tells it the line moved: at every move in a short
//! line; in a long one, a few times a second at most, less often the longer
//! the line (the line's news has a budget), and only when its place changed.
//! A counter customer's follower does not: it is woken by changes to its
//! own order and nothing else.
//!
//! With a durable store, the first change a follower yields (a buzzer's
//! ticket) and the final status wait until their change is in the store
//! ([`OrderBook::durable`]): a customer never holds a ticket, or sees
//! READY, for an order the café could forget. The changes in between
//! (BREWING, places in line) do not wait. While the store cannot be
//! written, such a wait ends in [`CafeError::StoreUnwritable`]: the
//! customer is told `UNAVAILABLE` instead of waiting on a failing disk.
//!
//! A café with a durable store that closes leaves its open orders in the
//! store for its restart instead of ending them
//! ([`OrderBook::left_for_restart`]): a follower of such an order ends
//! with the order still open, and the handler tells its customer to come
//! back once the café is.

use std::sync::Arc;

use tokio::sync::watch;

use super::{
    Kept, OrderBook,
    entry::{History, OrderEntry, Update},
    line_moves::Buzzer,
};
use crate::error::CafeError;
use cafe_domain::order::OrderStatus;

/// Where a follower starts in an order's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Every change since the order was placed.
    FromPlacement,
    /// The order as it is now, then every change.
    FromNow,
}

/// One order's changes, in order, until it ends.
#[derive(Debug)]
pub struct Follower {
    book: Arc<OrderBook>,
    entry: Arc<OrderEntry>,
    history: watch::Receiver<History>,
    /// How many changes of the history have been yielded.
    shown: usize,
    /// For a follower that shows the line: counted as a buzzer, and woken
    /// when the line moves while its order is in it.
    shows_line: Option<ShowsLine>,
    /// The place in line last yielded.
    shown_position: Option<u32>,
    /// Whether anything has been yielded yet.
    yielded: bool,
    /// Woken when the closing café leaves more orders for its restart.
    kept: watch::Receiver<Kept>,
}

/// What a follower that shows the line holds.
#[derive(Debug)]
struct ShowsLine {
    /// The line's moves, while the order is in line.
    moves: Option<watch::Receiver<u64>>,
    _buzzer: Buzzer,
}

/// Whether a change must be in the store before it is yielded: the first
/// one a follower yields, and a final status.
fn must_be_durable(first: bool, status: OrderStatus) -> bool {
    first || status.is_final()
}

impl Follower {
    /// Follows `entry`'s status changes from `from` (no places in line).
    pub fn new(book: Arc<OrderBook>, entry: Arc<OrderEntry>, from: Replay) -> Self {
        let history = entry.subscribe();
        let shown = match from {
            Replay::FromPlacement => 0,
            Replay::FromNow => history.borrow().len() - 1,
        };
        let kept = book.kept_changes();
        Follower {
            book,
            entry,
            kept,
            history,
            shown,
            shows_line: None,
            shown_position: None,
            yielded: false,
        }
    }

    /// Also yields the order's place in line as it moves up.
    pub fn with_positions(mut self) -> Self {
        self.shows_line = Some(ShowsLine {
            moves: None,
            _buzzer: self.book.line_moves.buzzer(),
        });
        self
    }

    /// The order followed.
    pub fn entry(&self) -> &Arc<OrderEntry> {
        &self.entry
    }

    /// The next change, or `None` once the final status has been yielded,
    /// or once the closing café left the order, still open, in its store
    /// for the restart ([`OrderBook::left_for_restart`]); an error when a
    /// change that must be durable cannot be made so (the store is failing).
    ///
    /// Cancel-safe: it only waits at its `.await`s, after every yield's
    /// bookkeeping is done, so dropping it mid-wait (a `select!` on the
    /// client hanging up) loses nothing.
    pub async fn next(&mut self) -> Result<Option<Update>, CafeError> {
        loop {
            // 1. Changes not shown yet, oldest first. The history's read
            // lock is let go before anything else is done.
            let (change, is_latest, status) = {
                let history = self.history.borrow_and_update();
                let latest = history.last().expect("never empty");
                let status = latest.status;
                match history.get(self.shown) {
                    Some(change) => (
                        Some(change.clone()),
                        self.shown + 1 == history.len(),
                        status,
                    ),
                    None if status.is_final() => return Ok(None),
                    None => (None, true, status),
                }
            };
            if let Some(mut change) = change {
                if must_be_durable(!self.yielded, change.status)
                    && !self.book.is_durable(change.seq)
                {
                    // Waited for before anything is marked shown, so this
                    // stays cancel-safe; then the change is read again.
                    self.book.durable(change.seq).await?;
                    continue;
                }
                self.shown += 1;
                // The latest change of a queued order shows where it is now,
                // which may be further up than when the change was made.
                if is_latest
                    && change.status == OrderStatus::Queued
                    && let Some(now) = self.book.position(&self.entry)
                {
                    change.queue_position = now;
                }
                if change.status == OrderStatus::Queued {
                    self.shown_position = Some(change.queue_position);
                }
                self.yielded = true;
                return Ok(Some(Update {
                    order: self.entry.order_at(&change),
                    queue_position: change.queue_position,
                    seq: change.seq,
                }));
            }

            // 2. Still waiting in line: has it moved up since last shown?
            // Subscribed to the line's moves only while in it (see
            // `line_moves`); back in line (a lease ran out), again.
            let in_line = status == OrderStatus::Queued;
            let line_moves = self.shows_line.as_mut().and_then(|shows| {
                if !in_line {
                    shows.moves = None;
                    return None;
                }
                let ticket = self.entry.ticket();
                Some(
                    shows
                        .moves
                        .get_or_insert_with(|| self.book.line_moves.subscribe(ticket)),
                )
            });
            if let Some(line_moves) = line_moves {
                // Marked seen *before* asking, so a move after the question
                // wakes us again.
                line_moves.borrow_and_update();
                if let Some(now) = self.book.position(&self.entry)
                    && self.shown_position != Some(now)
                {
                    let mut change = self.entry.latest();
                    if change.status != OrderStatus::Queued {
                        // It left the line a moment ago: that change comes
                        // first, through step 1.
                        continue;
                    }
                    self.shown_position = Some(now);
                    change.queue_position = now;
                    return Ok(Some(Update {
                        order: self.entry.order_at(&change),
                        queue_position: now,
                        seq: change.seq,
                    }));
                }
            }

            // 3. Nothing new to show. Marked seen *before* asking, so the
            // café leaving more orders after the question wakes us again.
            self.kept.borrow_and_update();
            if self.book.left_for_restart(&self.entry) {
                return Ok(None);
            }
            // Forgotten while open (a shared line pruned it while this café
            // missed its end): nothing more will come.
            if self.entry.is_forgotten() {
                return Err(CafeError::OrderNotFound(self.entry.id().to_string()));
            }

            // 4. Wait for news: a change to this order, (in line, for a
            // follower that shows the line) the line moving, or the closing
            // café leaving orders for its restart. The sender lives in the
            // book we hold, so `kept` never closes under us.
            let line_moves = self
                .shows_line
                .as_mut()
                .and_then(|shows| shows.moves.as_mut());
            let changed = match line_moves {
                Some(line_moves) => tokio::select! {
                    changed = self.history.changed() => changed.is_ok(),
                    moved = line_moves.changed() => moved.is_ok(),
                    kept = self.kept.changed() => kept.is_ok(),
                },
                None => tokio::select! {
                    changed = self.history.changed() => changed.is_ok(),
                    kept = self.kept.changed() => kept.is_ok(),
                },
            };
            if !changed {
                // Cannot happen while we hold the entry (it owns the history's
                // sender) and the book (the line's): nothing more will come.
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests;
