//! The order book: every order the café knows, the line of orders waiting
//! for a barista, and how each order's news reaches whoever waits for it.
//!
//! # Layout
//! - [`entry`]: one order, fixed at placing, and its history of changes
//!   (a `watch` channel: followers are woken by their own order only).
//! - [`line`](mod@line): the line as ticket numbers; places in line are derived, so
//!   an order leaving the line rewrites nothing.
//! - `registry`: orders by id, the idempotency index (customer and
//!   request id), and how long finished orders are remembered.
//! - [`follow`]: the one loop that follows an order for every RPC that
//!   waits for one.
//! - [`line_moves`]: telling buzzers their line moved, at a bounded rate.
//! - [`claim`]: the claim token that lets a customer cancel their order.
//! - [`census`]: the book counted, for the café's metrics.
//! - [`mirror`]: a book on a line shared by several cafés (PostgreSQL):
//!   the database decides, the book mirrors every café's changes.
//! - [`stored`]: the book's orders as the order store's rows, and the book
//!   rebuilt from them after a restart.
//!
//! Whether new orders are taken at all (open, no barista, closed) is not
//! the book's to decide: it asks [`Availability`], which also drives the
//! café's health.
//!
//! # One lock
//!
//! The registry and the line sit behind one `std::sync::Mutex`, and every
//! change to an order is made under it. That is the right lock here: every
//! critical section is a few map, queue and tree operations with no
//! `.await` inside, so a waiting thread never waits long, and an async
//! mutex would only add cost. (Holding a std guard across `.await` could
//! deadlock a runtime worker; clippy's `await_holding_lock` is denied
//! workspace-wide.) What costs anything, waking customers and baristas, is
//! done by the channels, each waking only who it concerns:
//!
//! - an order's `watch` channel wakes whoever follows that order;
//! - [`line_moves`] wakes the buzzers in line, at a bounded rate;
//! - the board, a `broadcast` channel, gets every status change of every
//!   order (and nothing is built for it while nobody watches);
//! - idle baristas wait on a [`Notify`]: one permit per order placed, so
//!   one order wakes one barista, not all of them.
//!
//! So the cost of one order does not grow with the length of the line:
//! joining, leaving (first or from the middle) and asking a place in line
//! are O(log n) at most, and nobody is woken for someone else's order. (A
//! buzzer pays for the places it is shown, which is the news it asked for;
//! a long line as a whole is shown a bounded number a second, so that cost
//! per order does not grow with the line either.)
//!
//! # The order store under the book
//!
//! Every change already happens in one critical section that knows what
//! changed: placing (a new order, a ticket, maybe a request id), a change
//! of status (a row in the order's history), leaving the line, forgetting
//! an old order. With a durable store (`--database-url`, see
//! [`crate::store`]) each of those also appends a record to the journal,
//! in the same critical section, and the change carries the record's
//! number ([`Change::seq`]). The book stays the authority and the store its
//! journal: the maps here are never read back from the database while the
//! café runs, only at a restart ([`OrderBook::restore`]).
//!
//! What a customer is told waits until its change is durable
//! ([`OrderBook::durable`]): the ticket and every final status a
//! [`Follower`] yields, a cancel's answer, `GetOrder`. Places in line and
//! BREWING do not wait: a restart can only take an order back to the line.
//! With the memory store there is no journal: nothing is built, and
//! nothing waits.
//!
//! On a line shared by several cafés (PostgreSQL) there is no journal
//! either, for the opposite reason: the database is written *first*, and
//! the book takes in the row it returns ([`mirror`]), so what the book
//! shows is already durable.
//!
//! # Closing keeps the line (with a durable store)
//!
//! A café that closes (SIGTERM) with a journal ends no open order: a
//! rolling restart on the same store must lose nothing, as a `kill -9`
//! does not. [`OrderBook::close`] stops the baristas taking from the line
//! and leaves the queued orders as they are in the store; if the grace
//! runs out, [`OrderBook::keep_unfinished`] leaves the drinks still
//! brewing as BREWING, which the restart brews again first. Either way the
//! order's followers end with the order still open
//! ([`OrderBook::left_for_restart`]) and the handlers answer `UNAVAILABLE`
//! saying how to come back. With the memory store nothing would survive,
//! so closing cancels the line and the grace's end fails what is left
//! ([`OrderBook::fail_unfinished`]), and the customers are told so.

pub mod census;
pub mod claim;
pub mod entry;
pub mod follow;
pub mod line;
pub mod line_moves;
pub mod mirror;
mod registry;
pub mod stored;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use cafe_domain::order::{FieldViolation, NewOrder, Order, OrderStatus};
use tokio::sync::{Notify, broadcast, watch};

use crate::{
    availability::Availability,
    error::CafeError,
    store::{Journal, Record, Seq, shared::SharedLine},
};

pub use census::Census;
pub use claim::ClaimToken;
pub use entry::{Change, OrderEntry, Origin, Update};
pub use follow::{Follower, Replay};
use line::Line;
pub use line::Ticket;
use line_moves::LineMoves;
pub use line_moves::{POSITION_INTERVAL, POSITIONS_PER_SECOND, SHORT_LINE};
use registry::Registry;
pub use stored::{REBREW_NOTE, Restored};

/// How many finished orders the café remembers for `GetOrder` and
/// `WatchOrder` by default (`--finished-orders-kept`); older ones are
/// forgotten, by the store too, so memory and the database stay bounded.
pub const FINISHED_ORDERS_KEPT: usize = 10_000;

/// How many board updates a slow board watcher may fall behind before it
/// misses some.
const BOARD_BACKLOG: usize = 1024;

/// The result of placing an order.
#[derive(Debug)]
pub struct Placed {
    /// The order (new, or the one placed earlier with the same request id).
    pub entry: Arc<OrderEntry>,
    /// False when an earlier order with the same request id was returned.
    pub is_new: bool,
    /// Its place in line now (0 if it has left the line).
    pub queue_position: u32,
}

/// The book's counts, for `GetStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Orders waiting in line.
    pub queued: usize,
    /// Orders a barista is brewing.
    pub brewing: usize,
}

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
    /// The line shared with other cafés, when there is one: then the
    /// database decides placing, claiming and ending orders, and the book
    /// mirrors it (see [`mirror`]).
    shared: Option<SharedLine>,
    /// Where every change is written down, with a durable store; `None`
    /// with the memory store.
    journal: Option<Arc<Journal>>,
    /// Which open orders a closing café with a durable store leaves in the
    /// store for its restart (see [`OrderBook::close`]); their followers
    /// are woken by it and end.
    kept: watch::Sender<Kept>,
}

/// Which open orders a closing café leaves in its store for the restart,
/// rather than ending them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// None: the café is open, or ends what it cannot finish.
    Nothing,
    /// The orders still in line (from closing on).
    Line,
    /// Every open order: the grace ran out with drinks still brewing.
    Unfinished,
}

#[derive(Debug)]
struct BookState {
    registry: Registry,
    /// Orders waiting for a barista, first come first served.
    line: Line<Arc<OrderEntry>>,
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
        Self::build(queue_capacity, availability, finished_kept, None, None)
    }

    /// Like [`OrderBook::with_retention`], writing every change to
    /// `journal` (a durable store's; `None` for the memory store).
    pub fn with_journal(
        queue_capacity: usize,
        availability: Arc<Availability>,
        finished_kept: usize,
        journal: Option<Arc<Journal>>,
    ) -> Self {
        Self::build(queue_capacity, availability, finished_kept, journal, None)
    }

    /// A book on the line `shared` with other cafés (see [`mirror`]): no
    /// journal, the database is written first.
    pub fn on_shared_line(
        queue_capacity: usize,
        availability: Arc<Availability>,
        finished_kept: usize,
        shared: SharedLine,
    ) -> Self {
        Self::build(
            queue_capacity,
            availability,
            finished_kept,
            None,
            Some(shared),
        )
    }

    fn build(
        queue_capacity: usize,
        availability: Arc<Availability>,
        finished_kept: usize,
        journal: Option<Arc<Journal>>,
        shared: Option<SharedLine>,
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
            shared,
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

    /// Places an order at the end of the line, or returns the order placed
    /// earlier by the same customer with the same request id. `origin` (the
    /// customer's deadline, the call's trace) travels with a new order to
    /// whoever brews it.
    pub fn place(&self, request: NewOrder, origin: Origin) -> Result<Placed, CafeError> {
        let mut book = self.lock();

        // A retry of an order already accepted gets that order back, even
        // while the café is closing or has no barista: it was not lost.
        if let Some(request_id) = &request.request_id
            && let Some(entry) = book.registry.placed_with(&request.customer, request_id)
        {
            return placed_earlier(&book, entry, &request);
        }

        // Asked under the book's lock: `close` marks the café closed before
        // it takes the lock to empty the line, so an order either is
        // refused here or is in the line `close` empties.
        self.availability.check()?;
        if book.line.len() >= self.queue_capacity {
            return Err(CafeError::QueueFull {
                capacity: self.queue_capacity,
            });
        }

        let id = book.registry.fresh_id();
        let queue_position = u32::try_from(book.line.len() + 1).unwrap_or(u32::MAX);
        let ticket = book.line.next_ticket();
        let entry = OrderEntry::new(id, ticket, request, origin, queue_position);
        if let Some(journal) = &self.journal {
            entry.placed_as(journal.append(stored::placed(&entry, &entry.latest())));
        }
        let entry = Arc::new(entry);
        book.line.push(Arc::clone(&entry));
        book.registry.insert(Arc::clone(&entry));
        self.tell_board(&entry, || entry.latest());
        drop(book);

        // Wake one idle barista; if none is idle, the permit is kept and the
        // next barista to ask for work finds the order at once.
        self.work.notify_one();
        Ok(Placed {
            entry,
            is_new: true,
            queue_position,
        })
    }

    /// Waits for the next order in line and takes it out of the line.
    /// (On a shared line, baristas claim with [`OrderBook::claim_next`].)
    /// Returns `None` once the café is closed and the line is empty: the
    /// barista's shift is over.
    pub async fn next_in_line(&self) -> Option<Arc<OrderEntry>> {
        loop {
            // Register for a wake-up *before* looking at the line, so an
            // order placed between the look and the wait is not missed.
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut book = self.lock();
                // A café keeping its line for the restart takes nothing
                // more out of it once closed.
                if self.keeps_line() && self.availability.is_closed() {
                    return None;
                }
                if let Some((_, entry)) = book.line.pop_front() {
                    self.line_moves.moved(book.line.len());
                    return Some(entry);
                }
                if self.availability.is_closed() {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Waits until an order waits in line, without taking it (or the café
    /// has closed): the remote dispatcher reserves a barista only then, so
    /// an idle café holds none.
    pub async fn until_order_waiting(&self) {
        loop {
            // As in `next_in_line`: register before looking.
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // (`next_in_line` and `claim_next` look at the line before
            // they wait, so the wake-up this may consume is not missed.)
            if self.queue_len() > 0 || self.availability.is_closed() {
                return;
            }
            notified.await;
        }
    }

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

    /// Marks an order as being brewed by `barista`. Returns false if it was
    /// cancelled in the meantime and must not be brewed. An order already
    /// brewing may start again with another barista: a remote barista went
    /// away and another took the order over.
    pub fn start_brewing(&self, entry: &OrderEntry, barista: Arc<str>) -> bool {
        let book = self.lock();
        self.change(&book, entry, |order| {
            if !matches!(order.status, OrderStatus::Queued | OrderStatus::Brewing) {
                return false;
            }
            order.status = OrderStatus::Brewing;
            order.barista = Some(barista);
            order.started_at = Some(SystemTime::now());
            order.note = None;
            true
        })
    }

    /// Tells the customer that the barista on their order went away and it
    /// is being retried (the order keeps its status; `note` says why).
    /// Returns false if the order has ended.
    pub fn barista_left(&self, entry: &OrderEntry, note: &str) -> bool {
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
    pub fn mark_ready(&self, entry: &OrderEntry) -> bool {
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
    pub fn mark_failed(&self, entry: &OrderEntry, reason: &str) -> bool {
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
    /// (a counter customer whose call was cancelled or timed out). On a
    /// shared line the cancel is written in the background and mirrored
    /// back (it is called from a drop guard, which cannot wait).
    pub fn abandon(&self, entry: &OrderEntry, reason: &str) -> bool {
        if let Some(shared) = &self.shared {
            return mirror::abandon(shared, self.availability.is_closed(), entry, reason);
        }
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
                journal.append(Record::Forgotten(forgotten.to_string()));
            }
        });
    }

    /// Waits until the change numbered `seq` ([`Change::seq`]) is in the
    /// store: what to await before telling a customer of it. Immediate
    /// with the memory store; [`CafeError::StoreUnwritable`] while the
    /// store is failing (the change is written once it recovers).
    pub async fn durable(&self, seq: Seq) -> Result<(), CafeError> {
        match &self.journal {
            Some(journal) => journal.durable(seq).await,
            None => Ok(()),
        }
    }

    /// Whether the change numbered `seq` is in the store.
    pub fn is_durable(&self, seq: Seq) -> bool {
        self.journal
            .as_ref()
            .is_none_or(|journal| journal.is_durable(seq))
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
                Some(journal) => journal.append(stored::changed(entry, made)),
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
            });
        }
    }

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

    /// Whether the café has closed.
    pub fn is_closed(&self) -> bool {
        self.availability.is_closed()
    }

    /// Resolves when the café closes.
    pub async fn closed(&self) {
        self.availability.closed().await
    }

    /// Fails every order that has not ended, telling its customer why: the
    /// last step of a shutdown whose grace ran out, so that no buzzer or
    /// counter customer is left waiting for a drink that will never come.
    pub fn fail_unfinished(&self, reason: &str) -> usize {
        let mut book = self.lock();
        let open: Vec<Arc<OrderEntry>> = book
            .registry
            .iter()
            .filter(|entry| !entry.status().is_final())
            .cloned()
            .collect();
        open.iter()
            .filter(|entry| self.end(&mut book, entry, OrderStatus::Failed, reason))
            .count()
    }

    /// Whether closing keeps the open orders for a restart rather than
    /// ending them: with a durable store of this café's own (a journal).
    /// (On a shared line the other cafés brew them instead.)
    fn keeps_line(&self) -> bool {
        self.journal.is_some()
    }

    /// Whether `entry` is left in the store for the café's restart: the
    /// café closed keeping its line and the order is still in it, or the
    /// grace ran out before it was finished. Its followers end here
    /// ([`Follower::next`] returns `None` with the order still open).
    pub fn left_for_restart(&self, entry: &OrderEntry) -> bool {
        match *self.kept.borrow() {
            Kept::Nothing => false,
            Kept::Line => self.position(entry).is_some(),
            Kept::Unfinished => !entry.status().is_final(),
        }
    }

    /// Woken whenever more orders are left for the restart: what a
    /// follower waits on beside its own order.
    fn kept_changes(&self) -> watch::Receiver<Kept> {
        self.kept.subscribe()
    }

    /// Leaves every order that has not ended in the store, as it is, for
    /// the café's restart (a drink still brewing is brewed again first),
    /// and ends their followers: the last step of a shutdown with a
    /// durable store whose grace ran out. Returns how many were left.
    pub fn keep_unfinished(&self) -> usize {
        self.kept.send_replace(Kept::Unfinished);
        self.lock()
            .registry
            .iter()
            .filter(|entry| !entry.status().is_final())
            .count()
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
        if self.shared.is_some() {
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

/// The answer to a retry of `request`, which `entry` was placed with
/// earlier: that order, unless the request id is being reused for a
/// different drink.
fn placed_earlier(
    book: &BookState,
    entry: &Arc<OrderEntry>,
    request: &NewOrder,
) -> Result<Placed, CafeError> {
    let earlier = entry.request();
    if earlier.drink.id != request.drink.id || earlier.size != request.size {
        return Err(CafeError::InvalidRequest(vec![FieldViolation {
            field: "request_id",
            description: format!(
                "request_id {:?} was already used for order {} ({} {}): use a new request_id for a different drink",
                request.request_id.as_deref().unwrap_or_default(),
                entry.id(),
                earlier.size,
                earlier.drink.id
            ),
        }]));
    }
    Ok(Placed {
        entry: Arc::clone(entry),
        is_new: false,
        queue_position: book.line.position(entry.ticket()).unwrap_or(0),
    })
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
