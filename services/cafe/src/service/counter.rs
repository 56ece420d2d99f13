//! Waiting at the counter (`OrderCoffee`): the synchronous way.
//!
//! The handler follows its order until it ends and only then answers: that
//! one `.await` is the whole synchronous café. It parks the request's task,
//! not a thread, but the customer can do nothing else meanwhile.
//!
//! A counter customer who walks away (their deadline passes, or they cancel
//! the call) takes their order with them: tonic drops the handler's future
//! mid-await, and with it a guard that cancels the order, so no barista
//! brews for nobody. A buzzer customer, by contrast, can come back with
//! `WatchOrder`, so their order carries on.
//!
//! A café with a durable store that closes keeps the order for its restart
//! rather than cancelling it: the customer is told `UNAVAILABLE`, and a
//! retry with the same `request_id` once the café is back finds the order
//! (the guard cancels nothing while the café closes).

use cafe_domain::order::{Order, OrderStatus};
use tracing::info;

use super::phases::Phases;
use crate::{
    book::{OrderEntry, Placed, Replay},
    error::CafeError,
    store::Orders,
};
use std::sync::Arc;

/// What the customer is told when the café cancels an order because it
/// closes before a barista got to it.
pub const CLOSING_NOTE: &str = "the café closed before a barista got to this order";

/// Waits at the counter until the order ends, tracing the wait as phases
/// under the call's span. A READY order is the answer; any other end is
/// an error for the customer.
pub(super) async fn wait(orders: &Orders, placed: Placed) -> Result<Order, CafeError> {
    // Only the first caller's guard: a retry with the same request_id that
    // gives up must not cancel the order for the first.
    let leaving = placed.is_new.then(|| LeaveCounterGuard {
        orders,
        entry: &placed.entry,
    });

    // Status changes only: a counter customer is not woken by the line
    // moving, only by its own order.
    let book = orders.book();
    let mut follower = book.follow(Arc::clone(&placed.entry), Replay::FromPlacement);
    let mut phases = Phases::default();
    let mut order = None;
    let followed = loop {
        match follower.next().await {
            Ok(Some(update)) => {
                phases.observe(&update.order, update.queue_position);
                order = Some(update.order);
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    if let Err(unwritable) = followed {
        // The store cannot keep the answer yet. The customer is told to
        // come back; the order stays in line, and a retry with the same
        // request_id finds it once the store is writable again.
        if let Some(leaving) = leaving {
            leaving.keep();
        }
        return Err(unwritable);
    }
    // The order has ended, or the closing café kept it for its restart
    // (then the guard cancels nothing: see `Orders::abandon`).
    drop(leaving);
    if !placed.entry.status().is_final() {
        return Err(CafeError::KeptForRestart(placed.entry.id().clone()));
    }
    let order = order.unwrap_or_else(|| placed.entry.snapshot());
    outcome(order, book.is_closed())
}

/// How an order that ended is answered at the counter.
fn outcome(order: Order, closing: bool) -> Result<Order, CafeError> {
    let note = |default: &str| order.note.as_deref().unwrap_or(default).to_owned();
    match order.status {
        OrderStatus::Ready => Ok(order),
        OrderStatus::Cancelled if closing => Err(CafeError::CancelledByClosing {
            note: note(CLOSING_NOTE),
            id: order.id,
        }),
        OrderStatus::Cancelled => Err(CafeError::Cancelled {
            note: note("cancelled"),
            id: order.id,
        }),
        _ => Err(CafeError::Failed {
            note: note("no reason given"),
            id: order.id,
        }),
    }
}

/// Cancels a counter order if its customer leaves before it is ready.
/// Once the order has ended, dropping it does nothing: a final order stays
/// final.
struct LeaveCounterGuard<'a> {
    orders: &'a Orders,
    entry: &'a OrderEntry,
}

impl LeaveCounterGuard<'_> {
    /// The customer goes, but the order stays: nothing is cancelled.
    fn keep(self) {
        // The guard owns nothing but borrows: forgetting it only skips
        // its `drop`.
        std::mem::forget(self);
    }
}

impl Drop for LeaveCounterGuard<'_> {
    fn drop(&mut self) {
        if self.orders.abandon(
            self.entry,
            "the customer left the counter before the drink was ready",
        ) {
            info!(order.id = %self.entry.id(), "customer left: order cancelled");
        }
    }
}
