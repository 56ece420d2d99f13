//! The order book: every order the café knows, the line of orders waiting
//! for a barista, and how each order's news reaches whoever waits for it.
//!
//! The book is the café's state machine and nothing else: one method per
//! transition (place, claim, start, ready, fail, note, cancel, close, the
//! grace's end), each synchronous, under one `std::sync::Mutex` never held
//! across `.await`. It does no I/O and knows no store: a durable store's
//! journal is handed each change as it is made ([`Recorder`]), and where
//! an order is kept is decided by the seam above it, the store's `Orders`.
//! Waking whoever waits is done by channels, each waking only who it
//! concerns: an order's `watch` (its followers), [`line_moves`] (buzzers,
//! at a bounded rate), the board's `broadcast`, and a [`Notify`] for idle
//! baristas (one order wakes one). See docs/cafe-server.md, "The order
//! book", for why each is shaped so.
//!
//! # Layout
//! - [`entry`]: one order, fixed at placing, and its history of changes.
//! - [`line`](mod@line): the line as ticket numbers (places are derived).
//! - `registry`: orders by id, request ids, and retention.
//! - [`follow`]: the one loop that follows an order for every RPC.
//! - [`line_moves`]: telling buzzers their line moved, at a bounded rate.
//! - [`claim`]: the claim token that lets a customer cancel their order.
//! - [`census`]: the book counted, for the café's metrics.
//! - [`written`]: what the book hands a durable store's journal.
//! - [`restore`]: the book rebuilt from a store's orders after a restart,
//!   and an order taken in as a shared line's row has it.
//!
//! Whether new orders are taken at all is [`Availability`]'s to say; what
//! closing does with the line ([`OnClose`]) is the store's choice.

pub mod census;
pub mod claim;
mod closing;
pub mod entry;
pub mod follow;
pub mod line;
pub mod line_moves;
mod placing;
mod reading;
mod registry;
pub mod restore;
pub mod written;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use cafe_domain::order::{Order, OrderStatus};
use tokio::sync::{Notify, broadcast, futures::Notified, watch};

use crate::{availability::Availability, error::CafeError};

pub use census::Census;
pub use claim::ClaimToken;
use closing::Kept;
pub use closing::OnClose;
pub use entry::{Change, OrderEntry, Origin, Seq, Update};
pub use follow::{Follower, Replay};
use line::Line;
pub use line::Ticket;
use line_moves::LineMoves;
pub use line_moves::{POSITION_INTERVAL, POSITIONS_PER_SECOND, SHORT_LINE};
pub use placing::{Admitted, Placed};
pub use reading::Counts;
use registry::Registry;
pub use restore::{REBREW_NOTE, Restored};
pub use written::{Durability, Recorder, Written};

/// How many finished orders the café remembers for `GetOrder` and
/// `WatchOrder` by default (`--finished-orders-kept`); older ones are
/// forgotten, by the store too, so memory and the database stay bounded.
pub const FINISHED_ORDERS_KEPT: usize = 10_000;

/// How many board updates a slow board watcher may fall behind before it
/// misses some.
const BOARD_BACKLOG: usize = 1024;

/// Every order the café knows, and the line for the baristas.
#[derive(Debug)]
pub struct OrderBook {
    state: Mutex<BookState>,
    /// Whether new orders are taken; the book refuses them when not, and
    /// closing goes through it.
    availability: Arc<Availability>,
    /// Wakes an idle barista when an order joins the line, or all of them
    /// when the café closes.
    work: Notify,
    board: broadcast::Sender<Update>,
    line_moves: LineMoves,
    queue_capacity: usize,
    /// How many orders ended, and how (for the metrics: see `census`).
    tally: census::Tally,
    /// What closing does with the orders still in line.
    on_close: OnClose,
    /// Where every change is written down, with a durable store of this
    /// café's own; `None` otherwise.
    journal: Option<Arc<dyn Recorder>>,
    /// Which open orders a closing café with a durable store leaves in the
    /// store for its restart (see [`OrderBook::close`]); their followers
    /// are woken by it and end.
    kept: watch::Sender<Kept>,
}

#[derive(Debug)]
struct BookState {
    registry: Registry,
    /// Orders waiting for a barista, first come first served.
    line: Line<Arc<OrderEntry>>,
}

/// What a barista finds at the line ([`OrderBook::claim`]).
#[derive(Debug)]
pub enum AtTheLine {
    /// The next order, now out of the line.
    Order(Arc<OrderEntry>),
    /// Nothing yet: wait for [`OrderBook::line_joined`] and look again.
    Empty,
    /// The café is closed (and its line empty, or kept for the restart):
    /// the barista's shift is over.
    ShiftOver,
}

#[cfg(test)]
impl AtTheLine {
    /// The order taken, if one was.
    pub(crate) fn order(self) -> Option<Arc<OrderEntry>> {
        match self {
            AtTheLine::Order(entry) => Some(entry),
            AtTheLine::Empty | AtTheLine::ShiftOver => None,
        }
    }
}

impl OrderBook {
    /// An empty book whose line holds at most `queue_capacity` orders, open
    /// as long as `availability` says so.
    pub fn new(queue_capacity: usize, availability: Arc<Availability>) -> Self {
        Self::with_retention(queue_capacity, availability, FINISHED_ORDERS_KEPT)
    }

    /// Like [`OrderBook::new`], remembering at most `finished_kept` final
    /// orders.
    pub fn with_retention(
        queue_capacity: usize,
        availability: Arc<Availability>,
        finished_kept: usize,
    ) -> Self {
        Self::build(
            queue_capacity,
            availability,
            finished_kept,
            None,
            OnClose::Cancel,
        )
    }

    /// Like [`OrderBook::with_retention`], writing every change to
    /// `journal` (`None` for the memory store) and doing `on_close` when
    /// the café closes.
    pub fn with_journal(
        queue_capacity: usize,
        availability: Arc<Availability>,
        finished_kept: usize,
        journal: Option<Arc<dyn Recorder>>,
    ) -> Self {
        let on_close = match journal {
            Some(_) => OnClose::KeepForRestart,
            None => OnClose::Cancel,
        };
        Self::build(
            queue_capacity,
            availability,
            finished_kept,
            journal,
            on_close,
        )
    }

    /// A book mirroring a line shared with other cafés: no journal (the
    /// database is written first), and closing leaves the line to them.
    pub fn on_shared_line(
        queue_capacity: usize,
        availability: Arc<Availability>,
        finished_kept: usize,
    ) -> Self {
        let on_close = OnClose::LeaveToOthers;
        Self::build(queue_capacity, availability, finished_kept, None, on_close)
    }

    fn build(
        queue_capacity: usize,
        availability: Arc<Availability>,
        finished_kept: usize,
        journal: Option<Arc<dyn Recorder>>,
        on_close: OnClose,
    ) -> Self {
        OrderBook {
            state: Mutex::new(BookState {
                registry: Registry::new(finished_kept),
                line: Line::default(),
            }),
            availability,
            work: Notify::new(),
            board: broadcast::channel(BOARD_BACKLOG).0,
            line_moves: LineMoves::new(),
            queue_capacity,
            tally: census::Tally::default(),
            on_close,
            journal,
            kept: watch::channel(Kept::Nothing).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BookState> {
        // A panic while holding the lock cannot leave the book half-changed
        // in a way that matters more than stopping the café would, so a
        // poisoned lock is used as it is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the next order out of the line, if there is one. (On a shared
    /// line, baristas claim in the database first: see the store's
    /// `Orders::claim`, which also does the waiting.)
    pub fn claim(&self) -> AtTheLine {
        let mut book = self.lock();
        // A café keeping its line for the restart takes nothing more out
        // of it once closed.
        if self.keeps_line() && self.availability.is_closed() {
            return AtTheLine::ShiftOver;
        }
        if let Some((_, entry)) = book.line.pop_front() {
            self.line_moves.moved(book.line.len());
            return AtTheLine::Order(entry);
        }
        if self.availability.is_closed() {
            AtTheLine::ShiftOver
        } else {
            AtTheLine::Empty
        }
    }

    /// Marks an order as being brewed by `barista`. Returns false if it was
    /// cancelled in the meantime and must not be brewed. An order already
    /// brewing may start again with another barista: a remote barista went
    /// away and another took the order over.
    ///
    /// The order's note stays: it says why this drink is brewed again ("the
    /// café restarted before it was ready", "the barista went away"), which
    /// is still true while it brews and is what a customer who looks now
    /// (GetOrder, the buzzer's BREWING event) wants to know. Cleared here, a
    /// free barista would take the order at once and nobody would see it.
    pub fn start(&self, entry: &OrderEntry, barista: Arc<str>) -> bool {
        let book = self.lock();
        self.change(&book, entry, |order| {
            if !matches!(order.status, OrderStatus::Queued | OrderStatus::Brewing) {
                return false;
            }
            order.status = OrderStatus::Brewing;
            order.barista = Some(barista);
            order.started_at = Some(SystemTime::now());
            true
        })
    }

    /// Tells the customer that the barista on their order went away and it
    /// is being retried (the order keeps its status; `note` says why).
    /// Returns false if the order has ended.
    pub fn note(&self, entry: &OrderEntry, note: &str) -> bool {
        let book = self.lock();
        self.change(&book, entry, |order| {
            if order.status.is_final() {
                return false;
            }
            order.note = Some(note.into());
            true
        })
    }

    /// Marks a brewing order as ready. Returns false if it had already ended
    /// (it was cancelled while brewing).
    pub fn ready(&self, entry: &OrderEntry) -> bool {
        let mut book = self.lock();
        let ready = self.change(&book, entry, |order| {
            if order.status != OrderStatus::Brewing {
                return false;
            }
            order.status = OrderStatus::Ready;
            order.ready_at = Some(SystemTime::now());
            true
        });
        if ready {
            self.finished(&mut book, entry);
        }
        ready
    }

    /// Marks an order as failed with a reason, unless it has already ended.
    pub fn fail(&self, entry: &OrderEntry, reason: &str) -> bool {
        self.end(&mut self.lock(), entry, OrderStatus::Failed, reason)
    }

    /// Cancels an order on behalf of the customer holding `claim_token`.
    /// A queued order leaves the line; a brewing one is stopped and its
    /// barista freed. A finished order cannot be cancelled. Returns the
    /// cancelled order and the journal number to wait for
    /// ([`OrderBook::durable`]) before saying so.
    pub fn cancel(
        &self,
        id: &str,
        claim_token: &str,
        reason: &str,
    ) -> Result<(Order, Seq), CafeError> {
        let entry = self.get(id)?;
        if !entry.claim_token().matches(claim_token) {
            return Err(CafeError::WrongClaimToken(entry.id().clone()));
        }
        self.end(&mut self.lock(), &entry, OrderStatus::Cancelled, reason);
        let now = entry.latest();
        if now.status == OrderStatus::Cancelled {
            // Cancelling twice is not an error: the customer gets what they
            // asked for.
            return Ok((entry.order_at(&now), now.seq));
        }
        let order = entry.order_at(&now);
        Err(CafeError::NotCancellable {
            id: order.id,
            status: order.status,
        })
    }

    /// Cancels an order without a claim token, because its customer left
    /// (a counter customer whose call was cancelled or timed out).
    pub fn abandon(&self, entry: &OrderEntry, reason: &str) -> bool {
        // A call cut because the café is closing is not a customer leaving:
        // the order keeps its place for the restart, and a retry with the
        // same request id finds it there.
        if self.keeps_line() && self.availability.is_closed() {
            return false;
        }
        self.end(&mut self.lock(), entry, OrderStatus::Cancelled, reason)
    }

    /// Ends a queued or brewing order with `status`; false if it had already
    /// ended. A queued order leaves the line; a barista brewing it sees the
    /// order end ([`OrderEntry::stopped`]) and stops.
    fn end(
        &self,
        book: &mut BookState,
        entry: &OrderEntry,
        status: OrderStatus,
        reason: &str,
    ) -> bool {
        let ended = self.change(book, entry, |order| {
            if order.status.is_final() {
                return false;
            }
            order.status = status;
            order.note = Some(reason.into());
            true
        });
        if ended {
            if book.line.remove(entry.ticket()).is_some() {
                self.line_moves.moved(book.line.len());
            }
            self.finished(book, entry);
        }
        ended
    }

    /// Notes that `entry` has ended; the oldest finished orders beyond
    /// retention are forgotten, by the store too.
    fn finished(&self, book: &mut BookState, entry: &OrderEntry) {
        let journal = &self.journal;
        book.registry.finished(entry.id(), |forgotten| {
            if let Some(journal) = journal {
                journal.record(Written::Forgotten(forgotten));
            }
        });
    }

    /// Waits until the change numbered `seq` ([`Change::seq`]) is in the
    /// store: what to await before telling a customer of it. Immediate
    /// with the memory store; [`CafeError::StoreUnwritable`] while the
    /// store is failing (the change is written once it recovers).
    pub async fn durable(&self, seq: Seq) -> Result<(), CafeError> {
        match &self.journal {
            Some(journal) => journal.durability().durable(seq).await,
            None => Ok(()),
        }
    }

    /// Waits until the change numbered `seq` is in the store, however long
    /// the store takes to become writable again (unlike
    /// [`OrderBook::durable`], which gives up while it is failing).
    pub async fn kept(&self, seq: Seq) {
        if let Some(journal) = &self.journal {
            journal.durability().kept(seq).await;
        }
    }

    /// Whether the change numbered `seq` is in the store.
    pub fn is_durable(&self, seq: Seq) -> bool {
        self.journal
            .as_ref()
            .is_none_or(|journal| journal.durability().is_durable(seq))
    }

    /// Applies `change` to the order's latest state if it returns true:
    /// records it in the order's history (waking whoever follows that
    /// order) and tells the board. Taking the locked `book` makes callers
    /// hold the book's lock, so changes never interleave and the place in
    /// line is read in the same moment.
    fn change(
        &self,
        book: &BookState,
        entry: &OrderEntry,
        change: impl FnOnce(&mut Change) -> bool,
    ) -> bool {
        let made = entry.record(
            change,
            |status| match status {
                // Still queued (a remote barista left before starting it):
                // its place, or 1 if a dispatcher already holds it.
                OrderStatus::Queued => book.line.position(entry.ticket()).unwrap_or(1),
                _ => 0,
            },
            |made| match &self.journal {
                Some(journal) => journal.record(Written::Changed(entry, made)),
                None => 0,
            },
        );
        match made {
            Some(made) => {
                self.tally.changed(made.status);
                self.tell_board(entry, || made);
                true
            }
            None => false,
        }
    }

    /// Sends a change to the board, if anyone watches it: an `Order` is
    /// only put together for a board that has watchers.
    fn tell_board(&self, entry: &OrderEntry, change: impl FnOnce() -> Change) {
        if self.board.receiver_count() > 0 {
            let change = change();
            // A watcher may leave between the count and the send: a send
            // error just means nobody is listening any more.
            let _ = self.board.send(Update {
                order: entry.order_at(&change),
                queue_position: change.queue_position,
                seq: change.seq,
            });
        }
    }

    /// Whether an order waits in line, or the café has closed: what the
    /// remote dispatcher waits for (with [`OrderBook::line_joined`]) before
    /// it reserves a barista, so an idle café holds none.
    pub fn order_waiting(&self) -> bool {
        self.queue_len() > 0 || self.availability.is_closed()
    }

    /// Whether new orders are taken, for whoever learns that the store
    /// cannot be written (or can again).
    pub fn availability(&self) -> &Arc<Availability> {
        &self.availability
    }

    /// Resolves when an order joins the line (one idle waiter per order),
    /// or the café closes (all of them). Enable it before looking at the
    /// line, so an order placed between the look and the wait is not missed.
    pub fn line_joined(&self) -> Notified<'_> {
        self.work.notified()
    }
}

#[cfg(test)]
pub(crate) mod proptests;
#[cfg(test)]
pub(crate) mod tests;
