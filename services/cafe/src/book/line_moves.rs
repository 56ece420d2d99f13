//! Telling buzzers that the line moved, at a bounded rate.
//!
//! A buzzer shows its place in line. Waking every buzzer in line each time
//! one order leaves it would cost the whole line per order: with 10,000
//! buzzers waiting, 10,000 wake-ups for each drink. Instead:
//!
//! - while the line is **short** (at most [`SHORT_LINE`] orders), each move
//!   is told at once: every step forward is news worth having, and it wakes
//!   at most that many buzzers;
//! - while it is **long**, moves are coalesced: the first untold one starts
//!   one shared ticker, which tells every buzzer once,
//!   [`POSITION_INTERVAL`] later, however many orders left meanwhile. A
//!   buzzer in a long line hears its place a few times a second at most.
//!
//! "Told" means one `watch` channel's version goes up; each buzzer then
//! asks the line for its own place (O(log n), see [`super::line`]). Counter
//! customers never subscribe: nothing here wakes them.
//!
//! The ticker is one task per book, started the first time a long line
//! moves (inside a runtime; outside one every move is told at once), and
//! stopped when the book is dropped.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Up to this many orders in line, every move is told at once. (The
/// contract in `proto/cafe/v1/cafe.proto` names it; a test checks it.)
pub const SHORT_LINE: usize = 32;

/// In a longer line, how long moves are gathered before buzzers are told.
pub const POSITION_INTERVAL: Duration = Duration::from_millis(250);

/// The line's news for buzzers.
#[derive(Debug)]
pub(super) struct LineMoves {
    shared: Arc<Shared>,
    /// Stops the ticker when the book (which owns this) is dropped.
    ticker: OnceLock<Option<DropGuard>>,
}

#[derive(Debug)]
struct Shared {
    /// Goes up each time buzzers are told; they wait on it.
    told: watch::Sender<u64>,
    /// A move happened that buzzers have not been told of.
    untold: AtomicBool,
    /// Wakes the ticker for the first untold move.
    wake: Notify,
}

impl Shared {
    fn tell(&self) {
        self.untold.store(false, Ordering::Release);
        // With nobody subscribed there is nobody to wake; a buzzer that
        // subscribes later asks for its place first anyway.
        if self.told.receiver_count() > 0 {
            self.told.send_modify(|told| *told += 1);
        }
    }
}

impl LineMoves {
    pub(super) fn new() -> Self {
        LineMoves {
            shared: Arc::new(Shared {
                told: watch::Sender::new(0),
                untold: AtomicBool::new(false),
                wake: Notify::new(),
            }),
            ticker: OnceLock::new(),
        }
    }

    /// A receiver that is woken when buzzers are told the line moved.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.told.subscribe()
    }

    /// How many buzzers follow the line now (each holds a receiver).
    pub(super) fn followers(&self) -> usize {
        self.shared.told.receiver_count()
    }

    /// An order left the line, which now holds `line_len` orders.
    pub(super) fn moved(&self, line_len: usize) {
        if line_len <= SHORT_LINE || !self.ticker_running() {
            self.shared.tell();
        } else if !self.shared.untold.swap(true, Ordering::AcqRel) {
            // The first untold move since the last tick starts the next.
            self.shared.wake.notify_one();
        }
    }

    /// Starts the ticker if it is not running; false if it cannot run
    /// (no runtime here).
    fn ticker_running(&self) -> bool {
        self.ticker
            .get_or_init(|| {
                let runtime = tokio::runtime::Handle::try_current().ok()?;
                let stop = CancellationToken::new();
                runtime.spawn(tick(Arc::clone(&self.shared), stop.clone()));
                Some(stop.drop_guard())
            })
            .is_some()
    }
}

/// The ticker: after the first untold move, waits [`POSITION_INTERVAL`]
/// and tells every buzzer at once.
async fn tick(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = shared.wake.notified() => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POSITION_INTERVAL) => {}
        }
        // A short line may have told them meanwhile.
        if shared.untold.load(Ordering::Acquire) {
            shared.tell();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_names_the_short_line() {
        let proto = include_str!("../../../../proto/cafe/v1/cafe.proto");
        assert!(
            proto.contains(&format!("In a long line (more than {SHORT_LINE} orders)")),
            "cafe.proto's OrderWithBuzzer comment must name SHORT_LINE ({SHORT_LINE})"
        );
    }
}
