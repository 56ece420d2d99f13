//! The café's baristas: each one a task that takes the next order in line,
//! brews it and comes back for more.
//!
//! This is where the waiting happens. A barista task spends almost all its
//! life in two `.await`s: waiting for an order ([`OrderBook::next_in_line`])
//! and waiting for the drink ([`brewing::brew`]). While it waits, it is a
//! parked future, not a thread: the runtime's few worker threads run whoever
//! has something to do. That is why two baristas and a thousand customers
//! waiting at the counter cost a handful of threads.

use std::sync::Arc;

use cafe::menu::TimeScale;
use cafe_barista::brewing::{self, BrewMode};
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span};

use crate::book::OrderBook;

/// How the baristas work.
#[derive(Debug, Clone, Copy)]
pub struct Shift {
    /// How many baristas.
    pub baristas: u16,
    /// Multiplier on every brew time.
    pub time_scale: TimeScale,
    /// How they wait while a drink brews.
    pub brew_mode: BrewMode,
}

/// Starts the baristas. Each task ends when the café closes and the line is
/// empty, after finishing the drink in hand; the returned set lets the
/// server wait for that while it shuts down.
pub fn start_shift(book: &Arc<OrderBook>, shift: Shift) -> JoinSet<()> {
    let mut baristas = JoinSet::new();
    for index in 0..usize::from(shift.baristas) {
        let name = brewing::barista_name(index);
        let book = Arc::clone(book);
        let span = info_span!("barista", barista = %name);
        baristas.spawn(work(book, name, shift).instrument(span));
    }
    baristas
}

async fn work(book: Arc<OrderBook>, name: String, shift: Shift) {
    while let Some(entry) = book.next_in_line().await {
        if !book.start_brewing(&entry, &name) {
            continue; // cancelled between leaving the line and reaching us
        }
        let order = entry.snapshot();
        let brew_time = order.drink.brew_time_for(order.size, shift.time_scale);
        info!(order.id = %order.id, drink = order.drink.id, size = %order.size, ?brew_time, "brewing");

        // Brew, unless the order is cancelled first: then `select!` drops the
        // brewing future, which stops its timer, and we are free at once.
        // (A blocking brew cannot be interrupted: it never yields to let
        // `select!` look at the other branch. One more cost of blocking.)
        tokio::select! {
            () = brewing::brew(shift.brew_mode, brew_time) => {
                if book.mark_ready(&entry) {
                    info!(order.id = %order.id, "ready");
                }
            }
            () = entry.stopped() => info!(order.id = %order.id, "stopped: the order was cancelled"),
        }
    }
    info!("shift over");
}
