//! Who brews, and the dispatch loop they share: K tasks, each taking the
//! next order in line and seeing it brewed, then coming back for more.
//!
//! [`Brewers`] is the one choice the café makes about its baristas:
//! - **embedded** (the default): each task *is* a barista, named `Ana`,
//!   `Ben`, …, and brews in-process;
//! - **remote** (`--barista-endpoint`): each task is a dispatcher that hands
//!   the order to a `cafe-barista` replica (see [`crate::remote`]); K is then
//!   how many drinks are in flight at once.
//!
//! Either way this is where the waiting happens. A task spends almost all
//! its life in two `.await`s: waiting for an order ([`OrderBook::next_in_line`])
//! and waiting for the drink. While it waits, it is a parked future, not a
//! thread: the runtime's few worker threads run whoever has something to
//! do. That is why two baristas and a thousand customers waiting at the
//! counter cost a handful of threads.

use std::sync::Arc;

use cafe::menu::TimeScale;
use cafe_barista::brewing::{self, BrewMode};
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span};

use crate::{
    book::{OrderBook, OrderEntry},
    remote::RemoteBaristas,
};

/// Who brews the café's orders.
#[derive(Debug, Clone)]
pub enum Brewers {
    /// Baristas inside the café process.
    Embedded {
        /// Multiplier on every brew time.
        time_scale: TimeScale,
        /// How they wait while a drink brews.
        brew_mode: BrewMode,
    },
    /// `cafe-barista` replicas over gRPC.
    Remote(RemoteBaristas),
}

/// What one dispatch task brews with.
enum Brewer {
    Embedded {
        name: String,
        time_scale: TimeScale,
        brew_mode: BrewMode,
    },
    Remote(RemoteBaristas),
}

/// Starts `count` tasks taking orders from the line to `brewers`. Each ends
/// when the café closes and the line is empty, after finishing the drink in
/// hand; the returned set lets the server wait for that while it shuts down.
pub fn start_shift(book: &Arc<OrderBook>, brewers: &Brewers, count: u16) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for index in 0..usize::from(count) {
        let (brewer, span) = match brewers {
            Brewers::Embedded {
                time_scale,
                brew_mode,
            } => {
                let name = brewing::barista_name(index);
                let span = info_span!("barista", barista = %name);
                let brewer = Brewer::Embedded {
                    name,
                    time_scale: *time_scale,
                    brew_mode: *brew_mode,
                };
                (brewer, span)
            }
            Brewers::Remote(remote) => (
                Brewer::Remote(remote.clone()),
                info_span!("dispatcher", dispatcher = index),
            ),
        };
        tasks.spawn(work(Arc::clone(book), brewer).instrument(span));
    }
    tasks
}

async fn work(book: Arc<OrderBook>, brewer: Brewer) {
    while let Some(entry) = book.next_in_line().await {
        match &brewer {
            Brewer::Embedded {
                name,
                time_scale,
                brew_mode,
            } => brew_here(&book, &entry, name, *time_scale, *brew_mode).await,
            Brewer::Remote(remote) => remote.brew(&book, &entry).await,
        }
    }
    info!("shift over");
}

/// An embedded barista brews one order.
async fn brew_here(
    book: &OrderBook,
    entry: &OrderEntry,
    name: &str,
    time_scale: TimeScale,
    brew_mode: BrewMode,
) {
    if !book.start_brewing(entry, name) {
        return; // cancelled between leaving the line and reaching us
    }
    let order = entry.snapshot();
    let brew_time = order.drink.brew_time_for(order.size, time_scale);
    info!(order.id = %order.id, drink = order.drink.id, size = %order.size, ?brew_time, "brewing");

    // Brew, unless the order is cancelled first: then `select!` drops the
    // brewing future, which stops its timer, and we are free at once.
    // (A blocking brew cannot be interrupted: it never yields to let
    // `select!` look at the other branch. One more cost of blocking.)
    tokio::select! {
        () = brewing::brew(brew_mode, brew_time) => {
            if book.mark_ready(entry) {
                info!(order.id = %order.id, "ready");
            }
        }
        () = entry.stopped() => info!(order.id = %order.id, "stopped: the order was cancelled"),
    }
}
