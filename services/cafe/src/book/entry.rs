//! One order in the book: what the customer asked for, fixed at placing,
//! and its **history**, the list of changes that happened to it since.
//!
//! The entry is shared (`Arc`) by the book, the barista brewing it and
//! everyone following it, and is dropped when the last of them lets go.
//! Its history lives in a `tokio::sync::watch` channel: whoever follows the
//! order subscribes and is woken by a change to *this* order only, never by
//! another order or by the line moving (a place in line is derived from the
//! line when asked, see [`super::line`]).
//!
//! A change records only what changes (status, barista, times, note), not a
//! copy of the whole order: the [`Order`] a follower, the board or a
//! response needs is put together from the fixed part and one change, and
//! its strings are shared, so that costs no copying of text. Nothing else
//! is kept per order; in a durable store the history would be a table of
//! changes beside a table of orders.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::SystemTime,
};

use cafe_domain::order::{NewOrder, Order, OrderId, OrderStatus};
use tokio::{sync::watch, time::Instant};

use super::{claim::ClaimToken, line::Ticket};

/// A change's number in the journal of a durable store; 0 is "nothing to
/// wait for" (the memory store, or an order taken in as the store has it).
pub type Seq = u64;

/// The call an order came from, kept with the order for whoever brews it:
/// a barista picks the order up in another task, long after the call's
/// span was current, so this is passed explicitly at placing.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// When the customer stops waiting (their gRPC deadline), passed on to
    /// a remote barista with the brew.
    pub deadline: Option<Instant>,
    /// The trace of the call that placed the order: the parent of the
    /// brew's spans, wherever they run. An `opentelemetry::Context` only
    /// names the span; holding it does not keep that span open (a
    /// `tracing::Span` would, for as long as the book remembers the order).
    pub trace: opentelemetry::Context,
}

/// What an order looks like right after one change: every field of an
/// [`Order`] that can change.
#[derive(Debug, Clone)]
pub struct Change {
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// Who is brewing or brewed it.
    pub barista: Option<Arc<str>>,
    /// When a barista (the latest one) started on it.
    pub started_at: Option<SystemTime>,
    /// When it was ready.
    pub ready_at: Option<SystemTime>,
    /// Why this change happened, when that needs saying.
    pub note: Option<Arc<str>>,
    /// Its place in line at that moment (0 once it left the line).
    pub queue_position: u32,
    /// The journal's number for the write that recorded this change (see
    /// [`super::Recorder`]): what to wait for before telling a customer of
    /// it. 0 with the memory store.
    pub seq: Seq,
}

/// An order as it is shown to a customer or on the board: the order after
/// one change, and its place in line then.
#[derive(Debug, Clone)]
pub struct Update {
    /// The order.
    pub order: Order,
    /// 1 for the next order to be brewed; 0 once it has left the line.
    pub queue_position: u32,
    /// The change's number in the store's journal (0: nothing to wait
    /// for): what a board waits for before it shows a final status.
    pub seq: Seq,
}

/// Every change to one order, oldest first; never empty (the first is the
/// order as placed, QUEUED).
pub(crate) type History = Vec<Change>;

/// One order in the book.
#[derive(Debug)]
pub struct OrderEntry {
    id: OrderId,
    /// Its number in the line (see [`super::line`]).
    ticket: Ticket,
    /// The request it was placed with: what to brew, and the customer's
    /// request id to match idempotent retries.
    request: NewOrder,
    placed_at: SystemTime,
    /// When this café's book took it in, on the runtime's clock (which
    /// tests can pause, unlike `placed_at`'s): a barista that was free
    /// before then cannot have started it earlier (see `crate::baristas`).
    taken_in: Instant,
    claim: ClaimToken,
    history: watch::Sender<History>,
    origin: Origin,
    /// On a shared line, the version of the database row this entry last
    /// took in ([`super::OrderBook::take_in`]); unused otherwise. Read and
    /// written under the book's lock: the atomic only lets it sit in an
    /// `Arc`.
    version: AtomicI64,
    /// Set when a shared line's book forgets it while open (see
    /// [`OrderEntry::forget`]).
    forgotten: AtomicBool,
}

impl OrderEntry {
    /// A queued order, `queue_position` in line.
    pub(super) fn new(
        id: OrderId,
        ticket: Ticket,
        request: NewOrder,
        origin: Origin,
        queue_position: u32,
    ) -> Self {
        // Room for the usual life (queued, brewing, ready) in one allocation.
        let mut history = Vec::with_capacity(3);
        history.push(Change {
            status: OrderStatus::Queued,
            barista: None,
            started_at: None,
            ready_at: None,
            note: None,
            queue_position,
            seq: 0,
        });
        OrderEntry {
            id,
            ticket,
            request,
            placed_at: SystemTime::now(),
            taken_in: Instant::now(),
            claim: ClaimToken::random(),
            history: watch::Sender::new(history),
            origin,
            version: AtomicI64::new(0),
            forgotten: AtomicBool::new(false),
        }
    }

    /// The book forgot this order while it was open
    /// ([`super::OrderBook::forget_gone`]): whoever follows it is woken,
    /// sees [`OrderEntry::is_forgotten`], and stops.
    pub(super) fn forget(&self) {
        self.forgotten.store(true, Ordering::Release);
        self.history.send_modify(|_| {});
    }

    /// Whether the book forgot this order while it was open.
    pub(super) fn is_forgotten(&self) -> bool {
        self.forgotten.load(Ordering::Acquire)
    }

    /// How many follow this order now (each holds a receiver of its
    /// history).
    pub(super) fn followers(&self) -> usize {
        self.history.receiver_count()
    }

    /// An order as a store has it, `now`: read back after a restart, another
    /// café's on a shared line, or one this café placed and the shared line
    /// numbered (with `origin`, its call; otherwise no trace parent).
    pub(crate) fn as_stored(
        id: OrderId,
        ticket: Ticket,
        request: NewOrder,
        placed_at: SystemTime,
        claim: ClaimToken,
        now: Change,
        origin: Origin,
    ) -> Self {
        OrderEntry {
            id,
            ticket,
            request,
            placed_at,
            taken_in: Instant::now(),
            claim,
            history: watch::Sender::new(vec![now]),
            origin,
            version: AtomicI64::new(0),
            forgotten: AtomicBool::new(false),
        }
    }

    /// Sets the journal number of the placing, before anyone follows the
    /// order.
    pub(super) fn placed_as(&self, seq: Seq) {
        self.history.send_modify(|history| history[0].seq = seq);
    }

    /// Sets the place in line of the first change, once the entry has
    /// joined the line (before anyone follows it).
    pub(super) fn joined_at(&self, queue_position: u32) {
        self.history
            .send_modify(|history| history[0].queue_position = queue_position);
    }

    /// The shared line's row version this entry has taken in.
    pub(super) fn version(&self) -> i64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Notes that this entry now holds the row's `version`.
    pub(super) fn set_version(&self, version: i64) {
        self.version.store(version, Ordering::Relaxed);
    }

    /// When it was placed.
    pub(crate) fn placed_at(&self) -> SystemTime {
        self.placed_at
    }

    /// When this café's book took it in (placed here, restored or
    /// mirrored), on the runtime's clock.
    pub fn taken_in(&self) -> Instant {
        self.taken_in
    }

    /// The order's id.
    pub fn id(&self) -> &OrderId {
        &self.id
    }

    /// Its number in the line.
    pub(crate) fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// What the customer asked for.
    pub fn request(&self) -> &NewOrder {
        &self.request
    }

    /// The claim token, for the customer who placed the order only.
    pub fn claim_token(&self) -> &ClaimToken {
        &self.claim
    }

    /// When the customer stops waiting, if they said.
    pub fn deadline(&self) -> Option<Instant> {
        self.origin.deadline
    }

    /// The trace context of the call that placed the order, for the spans
    /// of whoever brews it ([`grpc_telemetry::propagation::join_trace`]).
    pub fn trace_context(&self) -> &opentelemetry::Context {
        &self.origin.trace
    }

    /// The order as it was right after `change`.
    pub fn order_at(&self, change: &Change) -> Order {
        Order {
            id: self.id.clone(),
            customer: self.request.customer.clone(),
            drink: self.request.drink,
            size: self.request.size,
            status: change.status,
            barista: change.barista.clone(),
            placed_at: self.placed_at,
            started_at: change.started_at,
            ready_at: change.ready_at,
            note: change.note.clone(),
        }
    }

    /// The order as it is now.
    pub fn snapshot(&self) -> Order {
        self.order_at(self.history.borrow().last().expect("never empty"))
    }

    /// Its status now.
    pub fn status(&self) -> OrderStatus {
        self.history.borrow().last().expect("never empty").status
    }

    /// The latest change.
    pub(crate) fn latest(&self) -> Change {
        self.history.borrow().last().expect("never empty").clone()
    }

    /// A receiver woken by every change to this order, and only by those.
    pub(crate) fn subscribe(&self) -> watch::Receiver<History> {
        self.history.subscribe()
    }

    /// Resolves once the order has ended (READY, CANCELLED or FAILED):
    /// what a barista brewing it waits on to stop early.
    pub async fn stopped(&self) {
        // Not `finished()`: no `Order` is needed, and every embedded
        // barista's task holds this future while it brews, so it is kept
        // small.
        let mut history = self.history.subscribe();
        let _ = history
            .wait_for(|history| history.last().expect("never empty").status.is_final())
            .await;
    }

    /// Waits until the order reaches a final status and returns it then.
    pub async fn finished(&self) -> Order {
        let mut history = self.history.subscribe();
        // `wait_for` checks the current value first, so an order that is
        // already final returns at once. The sender lives in `self`, so the
        // channel cannot close while we wait.
        let history = history
            .wait_for(|history| history.last().expect("never empty").status.is_final())
            .await
            .expect("the sender lives as long as the entry");
        self.order_at(history.last().expect("never empty"))
    }

    /// Appends a change, if `change` makes one from the latest (it returns
    /// false to leave the order as it is), and wakes the order's
    /// followers. The book calls this under its lock, so changes to one
    /// order never interleave and `queue_position` is read from the line
    /// in the same moment; `journal` writes the change down and returns its
    /// number. Returns the change made.
    pub(super) fn record(
        &self,
        change: impl FnOnce(&mut Change) -> bool,
        queue_position: impl FnOnce(OrderStatus) -> u32,
        journal: impl FnOnce(&Change) -> Seq,
    ) -> Option<Change> {
        let mut made = None;
        self.history.send_if_modified(|history| {
            let mut next = history.last().expect("never empty").clone();
            if !change(&mut next) {
                return false;
            }
            next.queue_position = queue_position(next.status);
            next.seq = journal(&next);
            made = Some(next.clone());
            history.push(next);
            true
        });
        made
    }
}
