//! Telling buzzers that the line moved, at a bounded rate.
//!
//! A buzzer shows its place in line. Waking every buzzer in line each time
//! one order leaves it would cost the whole line per order. Instead:
//!
//! - while the line is **short** (at most [`SHORT_LINE`] orders), each move
//!   is told at once: it wakes at most that many buzzers;
//! - while it is **long**, moves are coalesced and told **in turns**: the
//!   buzzers are split into [`GROUPS`] groups by ticket number, and one
//!   shared ticker tells one group at a time, round robin, at most once per
//!   [`POSITION_INTERVAL`] each, and the line as a whole at most
//!   [`POSITIONS_PER_SECOND`] places a second. A longer line costs no more
//!   per second: each buzzer hears its place less often instead.
//!
//! So the line's news costs a bounded amount per order served, in small
//! waves rather than one wake-up of the whole line (which would hold up
//! every other task, the baristas' timers included).
//!
//! "Told" means one group's `watch` channel's version goes up; each buzzer
//! in it then asks the line for its own place (O(log n)) and sends it only
//! if it changed. Counter customers never subscribe, and a buzzer is
//! subscribed only while its order is in line: a move costs nothing for the
//! orders being brewed (as many as there are baristas), whose groups would
//! otherwise each be locked and told at every move.
//!
//! The ticker is one task per book, started the first time a long line
//! moves (inside a runtime; outside one every move is told at once), and
//! stopped with the book.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::line::Ticket;

/// Up to this many orders in line, every move is told at once. (The
/// contract in `proto/cafe/v1/cafe.proto` names it; a test checks it.)
pub const SHORT_LINE: usize = 32;

/// In a longer line, the least time between two places told to one buzzer.
pub const POSITION_INTERVAL: Duration = Duration::from_millis(250);

/// In a longer line, the most places told per second to the whole line:
/// about as many as the café serves orders, so a place or two per order
/// served, where telling every buzzer a few times a second cost many.
pub const POSITIONS_PER_SECOND: u32 = 2_000;

/// How many groups the buzzers are told in. More groups make smaller waves;
/// each costs one `watch` send per move while the line is short.
pub const GROUPS: usize = 16;

/// The least rest between two groups, so that one group is told at most
/// once per [`POSITION_INTERVAL`] (the ticker visits every group in turn).
const STEP: Duration = Duration::from_micros(POSITION_INTERVAL.as_micros() as u64 / GROUPS as u64);

/// The line's news for buzzers.
#[derive(Debug)]
pub(super) struct LineMoves {
    shared: Arc<Shared>,
    /// Stops the ticker when the book (which owns this) is dropped.
    ticker: OnceLock<Option<DropGuard>>,
}

#[derive(Debug)]
struct Shared {
    /// One channel per group; its value is the number of moves the group
    /// has been told of. A buzzer waits on its group's.
    groups: [watch::Sender<u64>; GROUPS],
    /// How many times the line moved.
    moves: AtomicU64,
    /// Wakes the ticker when the line moves while it rests with nothing
    /// left to tell.
    wake: Notify,
    /// Held by every buzzer, in line or not: its count is how many there
    /// are ([`LineMoves::followers`]).
    buzzers: Arc<()>,
}

/// One buzzer counted in [`LineMoves::followers`] until it is dropped.
#[derive(Debug)]
pub(super) struct Buzzer {
    _counted: Arc<()>,
}

impl Shared {
    /// Tells group `group` of every move up to `moves`; returns how many
    /// buzzers follow it (what telling it cost, at most).
    fn tell(&self, group: usize, moves: u64) -> usize {
        let sender = &self.groups[group];
        let followers = sender.receiver_count();
        sender.send_if_modified(|told| {
            let news = *told < moves;
            *told = moves.max(*told);
            // With nobody subscribed there is nobody to wake: the group is
            // marked told without a wake-up. (A buzzer that subscribes later
            // asks for its place first anyway.)
            news && followers > 0
        });
        followers
    }

    /// Whether `group` has not heard of every move yet.
    fn untold(&self, group: usize) -> bool {
        *self.groups[group].borrow() < self.moves.load(Ordering::Acquire)
    }
}

/// The group a buzzer with `ticket` is told in: consecutive tickets in
/// different groups, so each group is a slice of the whole line.
fn group_of(ticket: Ticket) -> usize {
    (ticket % GROUPS as u64) as usize
}

impl LineMoves {
    pub(super) fn new() -> Self {
        LineMoves {
            shared: Arc::new(Shared {
                groups: std::array::from_fn(|_| watch::Sender::new(0)),
                moves: AtomicU64::new(0),
                wake: Notify::new(),
                buzzers: Arc::new(()),
            }),
            ticker: OnceLock::new(),
        }
    }

    /// A new buzzer, counted until it is dropped.
    pub(super) fn buzzer(&self) -> Buzzer {
        Buzzer {
            _counted: Arc::clone(&self.shared.buzzers),
        }
    }

    /// A receiver that is woken when the buzzer of the order with `ticket`
    /// is told the line moved: held while that order is in line.
    pub(super) fn subscribe(&self, ticket: Ticket) -> watch::Receiver<u64> {
        self.shared.groups[group_of(ticket)].subscribe()
    }

    /// How many buzzers are subscribed to the line's moves: those whose
    /// order is in line.
    #[cfg(test)]
    pub(super) fn subscribed(&self) -> usize {
        self.shared
            .groups
            .iter()
            .map(watch::Sender::receiver_count)
            .sum()
    }

    /// How many buzzers follow their orders now, in line or not.
    pub(super) fn followers(&self) -> usize {
        Arc::strong_count(&self.shared.buzzers) - 1
    }

    /// An order left the line, which now holds `line_len` orders.
    pub(super) fn moved(&self, line_len: usize) {
        let moves = self.shared.moves.fetch_add(1, Ordering::AcqRel) + 1;
        if line_len <= SHORT_LINE || !self.ticker_running() {
            // Groups nobody follows are skipped (not even locked): a café
            // of counter customers pays nothing here. The ticker marks them
            // told when it comes by.
            for (group, sender) in self.shared.groups.iter().enumerate() {
                if sender.receiver_count() > 0 {
                    self.shared.tell(group, moves);
                }
            }
        } else {
            // The ticker rests on this only once every group is told, so
            // most moves in a long line wake nobody.
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

/// The ticker: visits the groups in turn, telling each what it has not
/// heard, at the pace the module's documentation gives; rests on
/// `shared.wake` when every group has heard every move.
async fn tick(shared: Arc<Shared>, stop: CancellationToken) {
    // When each group was last told by the ticker.
    let mut told_at: [Option<Instant>; GROUPS] = [None; GROUPS];
    let mut turn = 0;
    loop {
        // Registered before looking, so a move after the look wakes us.
        let moved = shared.wake.notified();
        tokio::pin!(moved);
        moved.as_mut().enable();
        let Some(group) = (0..GROUPS)
            .map(|i| (turn + i) % GROUPS)
            .find(|&group| shared.untold(group))
        else {
            tokio::select! {
                () = stop.cancelled() => return,
                () = moved => continue,
            }
        };
        // At most once per interval for this group (a short line may have
        // told it meanwhile, which does not count: that was at once).
        if let Some(at) = told_at[group] {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(at + POSITION_INTERVAL) => {}
            }
        }
        let moves = shared.moves.load(Ordering::Acquire);
        let followers = shared.tell(group, moves);
        told_at[group] = Some(Instant::now());
        turn = (group + 1) % GROUPS;
        // The line's budget: n places told cost n ÷ POSITIONS_PER_SECOND.
        let rest = STEP.max(Duration::from_secs(1) * followers as u32 / POSITIONS_PER_SECOND);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(rest) => {}
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
