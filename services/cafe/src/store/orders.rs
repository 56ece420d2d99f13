//! The one seam between the café and where its orders are kept: the
//! service and the baristas act on an order through [`Orders`], which
//! applies the transition to the [book](crate::book) and does what its
//! store needs.
//!
//! - **memory**: nothing; the book is all there is.
//! - **journal** (SQLite): the book hands each change to the journal as it
//!   makes it; what a customer is told waits until it is durable.
//! - **shared line** (PostgreSQL): the database decides first, then the
//!   book takes in the row it returned ([`super::mirror`]).
//!
//! So no caller asks which store it is: a barista claims, starts and
//! finishes an order the same way on every store, and closing is one call
//! whose effect the store decides. [`Upkeep`] is what runs beside the
//! orders while the café serves (the journal's writer, or following the
//! shared line), finished once the transport is down.
//!
//! Being the one seam, it is also the one place the `slow-store` fault
//! (`--faults`, [`cafe_domain::faults`]) slows every store: each change it
//! takes waits the extra delay first, inside a `store.commit` span of the
//! caller's trace; and where `leak` keeps memory for each order placed.

use std::{future::Future, sync::Arc, time::Duration};

use cafe_domain::{
    faults::Faults,
    order::{NewOrder, Order},
};
use futures::{FutureExt as _, future::Either};
use grpc_serving::Critical;
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use super::{
    Journal, Store, StoreError, batches::Batches, following::Following, journal, mirror, rows,
    shared::SharedLine,
};
use crate::{
    availability::Availability,
    book::{AtTheLine, OrderBook, OrderEntry, Origin, Placed},
    error::CafeError,
    metrics::PhaseTimes,
};

/// How long the café waits, after its transport has shut down, for the
/// journal's last changes to be written.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// The café's orders: its book, and the store that keeps them.
#[derive(Debug, Clone)]
pub struct Orders {
    book: Arc<OrderBook>,
    store: KeptIn,
    /// The faults in force, shared with the baristas (`--faults`); none
    /// unless switched on.
    faults: Faults,
    /// Where each READY order's wait and brew are observed.
    phases: PhaseTimes,
}

/// Where the book's orders are kept.
#[derive(Debug, Clone)]
enum KeptIn {
    /// Nowhere else: a restart forgets them.
    Memory,
    /// In this café's own store, through the book's journal.
    Journal,
    /// In a line shared with other cafés, which decides first; placing,
    /// claims and READY are written in batches.
    SharedLine(SharedLine, Batches),
}

/// What a book needs to know when its store opens it.
#[derive(Debug, Clone, Copy)]
pub struct BookSettings {
    /// `--queue-capacity`.
    pub queue_capacity: usize,
    /// `--finished-orders-kept`.
    pub finished_kept: usize,
    /// `--lease`: how long a café on a shared line may be silent.
    pub lease: Duration,
}

/// What runs beside the orders while the café serves, until
/// [`Upkeep::finish`].
#[derive(Debug)]
pub struct Upkeep(Running);

#[derive(Debug)]
enum Running {
    /// Nothing (the memory store).
    Nothing,
    /// The journal's writer, which owns the store.
    Writer(Arc<Journal>, JoinHandle<()>),
    /// Following the shared line, and this café's heartbeat.
    Following(Following, SharedLine),
}

impl Orders {
    /// Orders kept in `book` alone (the memory store).
    pub fn in_memory(book: Arc<OrderBook>) -> Self {
        Orders {
            book,
            store: KeptIn::Memory,
            faults: Faults::default(),
            phases: PhaseTimes::default(),
        }
    }

    /// Opens the store `url` names (see [`Store::open`]; a `postgres://`
    /// URL is a shared line), rebuilds the book from what it holds, and
    /// starts its upkeep, whose task (the journal's writer, or following
    /// the shared line) is one of the café's `critical` parts.
    pub async fn open(
        url: &str,
        settings: BookSettings,
        availability: &Arc<Availability>,
        critical: &Critical,
    ) -> Result<(Orders, Upkeep), StoreError> {
        let BookSettings {
            queue_capacity,
            finished_kept,
            lease,
        } = settings;
        let availability = Arc::clone(availability);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let shared = SharedLine::open(url).await?;
            let book = Arc::new(OrderBook::on_shared_line(
                queue_capacity,
                availability,
                finished_kept,
            ));
            let following =
                Following::start(&book, &shared, lease, finished_kept, critical).await?;
            let batches = Batches::start(&book, &shared, critical);
            let orders = Orders {
                book,
                store: KeptIn::SharedLine(shared.clone(), batches),
                faults: Faults::default(),
                phases: PhaseTimes::default(),
            };
            return Ok((orders, Upkeep(Running::Following(following, shared))));
        }
        let store = Store::open(url).await?;
        let recovered = store.recover().await?;
        // No journal for the memory store: nothing is written, nothing
        // waits.
        let journal = store.is_durable().then(|| Arc::new(Journal::new()));
        let book = Arc::new(OrderBook::with_journal(
            queue_capacity,
            Arc::clone(&availability),
            finished_kept,
            journal.clone().map(|journal| journal as _),
        ));
        let restored = rows::restore(&book, recovered);
        info!(store = %store.describe(), queued = restored.queued, rebrewed = restored.rebrewed,
              finished = restored.finished, unreadable = restored.unreadable, "order store open");
        let Some(journal) = journal else {
            return Ok((Orders::in_memory(book), Upkeep(Running::Nothing)));
        };
        // The writer owns the store from here; it ends once the journal is
        // closed and written out (`Upkeep::finish`).
        let writer = journal::write(Arc::clone(&journal), store, availability);
        let writer = tokio::spawn(critical.watch("the order store's writer", writer));
        let orders = Orders {
            book,
            store: KeptIn::Journal,
            faults: Faults::default(),
            phases: PhaseTimes::default(),
        };
        Ok((orders, Upkeep(Running::Writer(journal, writer))))
    }

    /// These orders, broken by `faults` (and their baristas with them).
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// These orders, their phases observed in `phases` (served by the
    /// café's collector).
    pub fn with_phases(mut self, phases: PhaseTimes) -> Self {
        self.phases = phases;
        self
    }

    /// The faults in force: the embedded baristas read the brews' here.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// One change through the seam: `change`, after the slow store's delay
    /// when that fault is on, the two in a `store.commit` span (a child of
    /// the caller's) so the trace shows where the time went. With the
    /// fault off, no span and no wait: the hot path is as it was.
    ///
    /// It returns the future rather than being an `async fn`, which would
    /// keep `change` twice (as its argument, and as awaited): a barista
    /// keeps room for its `ready` during the whole brew, and a café may
    /// have 100,000 baristas. For the same reason the shared line's steps,
    /// each a round trip to PostgreSQL, are boxed: unboxed, they would size
    /// every barista on every store.
    fn commit<F: Future>(
        &self,
        action: &'static str,
        change: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        match self.faults.slow_store() {
            None => Either::Left(change),
            Some(delay) => {
                let span = info_span!("store.commit", store.action = action, fault = "slow-store", fault.delay = ?delay);
                Either::Right(tokio::time::sleep(delay).then(|()| change).instrument(span))
            }
        }
    }

    /// The book: for following orders, the board and the counts.
    pub fn book(&self) -> &Arc<OrderBook> {
        &self.book
    }

    /// Places an order at the end of the line, or returns the order placed
    /// earlier by the same customer with the same request id. `origin`
    /// travels with a new order to whoever brews it.
    pub async fn place(&self, request: NewOrder, origin: Origin) -> Result<Placed, CafeError> {
        let placed = self
            .commit("place", async {
                match &self.store {
                    KeptIn::Memory | KeptIn::Journal => self.book.place(request, origin),
                    KeptIn::SharedLine(_, batches) => {
                        mirror::place(&self.book, batches, request, origin).await
                    }
                }
            })
            .await;
        if placed.is_ok() {
            self.faults.leak_for_one_order();
        }
        placed
    }

    /// The order with this id (on a shared line, one placed a moment ago
    /// at another café too).
    pub async fn find(&self, id: &str) -> Result<Arc<OrderEntry>, CafeError> {
        match &self.store {
            KeptIn::Memory | KeptIn::Journal => self.book.get(id),
            KeptIn::SharedLine(shared, _) => mirror::find(&self.book, shared, id).await,
        }
    }

    /// The order with this id as the store has it: a change not yet
    /// durable (READY a moment ago) is waited for, never shown before it
    /// is kept.
    pub async fn get(&self, id: &str) -> Result<Order, CafeError> {
        let entry = self.find(id).await?;
        let now = entry.latest();
        self.book.durable(now.seq).await?;
        Ok(entry.order_at(&now))
    }

    /// Waits for the next order in line and takes it for `barista` (on a
    /// shared line, claimed in the database: it comes back BREWING by
    /// `barista`). `None` once the café is closed and the barista's shift
    /// is over.
    pub async fn claim(&self, barista: &Arc<str>) -> Option<Arc<OrderEntry>> {
        match &self.store {
            KeptIn::Memory | KeptIn::Journal => loop {
                // Registered for a wake-up *before* looking at the line, so
                // an order placed between the look and the wait is not missed.
                let joined = self.book.line_joined();
                tokio::pin!(joined);
                joined.as_mut().enable();
                match self.book.claim() {
                    AtTheLine::Order(entry) => return Some(entry),
                    AtTheLine::ShiftOver => return None,
                    AtTheLine::Empty => joined.await,
                }
            },
            KeptIn::SharedLine(_, batches) => batches.claim(barista).await,
        }
    }

    /// `barista` starts brewing `entry`. False if it ended meanwhile (or,
    /// on a shared line, is no longer this café's) and must not be brewed.
    pub async fn start(&self, entry: &OrderEntry, barista: Arc<str>) -> bool {
        self.commit("start", async {
            match &self.store {
                KeptIn::Memory | KeptIn::Journal => self.book.start(entry, barista),
                KeptIn::SharedLine(shared, _) => {
                    Box::pin(mirror::start(&self.book, shared, entry, barista)).await
                }
            }
        })
        .await
    }

    /// Marks a brewing order as ready. False if it had already ended (or
    /// is no longer this café's to finish).
    pub async fn ready(&self, entry: &OrderEntry) -> bool {
        self.made_ready(entry, None).await
    }

    /// [`Orders::ready`], said by the `barista` who brewed it and stays for
    /// the next order: on a shared line its next claim goes in the same
    /// statement as the READY (a round of the line waits for one statement,
    /// not two), and its next [`Orders::claim`] takes what it got.
    pub async fn ready_and_stay(&self, entry: &OrderEntry, barista: &Arc<str>) -> bool {
        self.made_ready(entry, Some(barista)).await
    }

    async fn made_ready(&self, entry: &OrderEntry, stays: Option<&Arc<str>>) -> bool {
        let ready = self
            .commit("ready", async {
                match &self.store {
                    KeptIn::Memory | KeptIn::Journal => self.book.ready(entry),
                    KeptIn::SharedLine(shared, batches) => {
                        Box::pin(mirror::ready(&self.book, shared, batches, entry, stays)).await
                    }
                }
            })
            .await;
        if ready {
            self.phases
                .observe_ready(&entry.snapshot(), entry.trace_context());
        }
        ready
    }

    /// Fails an order with `reason`, unless it has already ended (on a
    /// shared line, a closing café hands it back to the line instead).
    pub async fn fail(&self, entry: &OrderEntry, reason: &str) -> bool {
        self.commit("fail", async {
            match &self.store {
                KeptIn::Memory | KeptIn::Journal => self.book.fail(entry, reason),
                KeptIn::SharedLine(shared, _) => {
                    Box::pin(mirror::fail(&self.book, shared, entry, reason)).await
                }
            }
        })
        .await
    }

    /// Notes why an open order waits longer (its barista went away).
    pub async fn note(&self, entry: &OrderEntry, note: &str) -> bool {
        self.commit("note", async {
            match &self.store {
                KeptIn::Memory | KeptIn::Journal => self.book.note(entry, note),
                KeptIn::SharedLine(shared, _) => {
                    Box::pin(mirror::note(&self.book, shared, entry, note)).await
                }
            }
        })
        .await
    }

    /// Cancels an order for the customer holding `claim_token`, and
    /// answers once the cancel is kept: a cancelled order must not come
    /// back after a restart.
    pub async fn cancel(
        &self,
        id: &str,
        claim_token: &str,
        reason: &str,
    ) -> Result<Order, CafeError> {
        self.commit("cancel", async {
            match &self.store {
                KeptIn::Memory | KeptIn::Journal => {
                    let (order, seq) = self.book.cancel(id, claim_token, reason)?;
                    self.book.durable(seq).await?;
                    Ok(order)
                }
                KeptIn::SharedLine(shared, _) => {
                    mirror::cancel(&self.book, shared, id, claim_token, reason).await
                }
            }
        })
        .await
    }

    /// Cancels an order because its customer left (called from a drop
    /// guard, so it cannot wait: on a shared line the cancel is written in
    /// the background). A call cut by the café closing cancels nothing.
    pub fn abandon(&self, entry: &OrderEntry, reason: &str) -> bool {
        match &self.store {
            KeptIn::Memory | KeptIn::Journal => self.book.abandon(entry, reason),
            KeptIn::SharedLine(shared, _) => mirror::abandon(&self.book, shared, entry, reason),
        }
    }

    /// Puts a queued order a remote barista turned away back at its place
    /// in line (see [`OrderBook::put_back`]). False if it stays with whoever
    /// holds it: it ended, or on a shared line it is already claimed.
    pub fn put_back(&self, entry: &Arc<OrderEntry>, closing_note: &str) -> bool {
        match &self.store {
            KeptIn::Memory | KeptIn::Journal => self.book.put_back(entry, closing_note),
            KeptIn::SharedLine(..) => false,
        }
    }

    /// Resolves when a drink still waiting for a barista must go back to
    /// the line ([`Orders::fail`] hands it back): when the café closes on a
    /// shared line, where another café can brew it. Never otherwise: a
    /// drink in hand is finished here within the shutdown grace.
    pub async fn waiting_drinks_go_back(&self) {
        match &self.store {
            KeptIn::Memory | KeptIn::Journal => std::future::pending().await,
            KeptIn::SharedLine(..) => self.book.closed().await,
        }
    }

    /// Closes the café: no new orders; the orders still in line are
    /// cancelled, kept for the restart, or left to the other cafés, as the
    /// store decides ([`OrderBook::close`]). Returns how many it cancelled.
    pub fn close(&self, reason: &str) -> usize {
        self.book.close(reason)
    }

    /// The shutdown grace ran out with drinks still brewing: with the
    /// memory store they fail with `reason`; with a journal they are kept
    /// BREWING for the restart; on a shared line they are handed back to
    /// the other cafés. Logs what it did.
    pub async fn grace_over(&self, reason: &str) {
        match &self.store {
            KeptIn::Memory => {
                let failed = self.book.grace_over(reason);
                warn!(
                    failed,
                    "shutdown grace over with drinks still brewing: failed them"
                );
            }
            KeptIn::Journal => {
                let kept = self.book.grace_over(reason);
                warn!(
                    kept,
                    "shutdown grace over with drinks still brewing: kept them for the restart"
                );
            }
            KeptIn::SharedLine(shared, _) => {
                let handed_back = mirror::hand_back_unfinished(&self.book, shared).await;
                warn!(
                    handed_back,
                    "shutdown grace over with drinks still brewing: handed them back to the shared line"
                );
            }
        }
    }
}

impl Upkeep {
    /// Once the transport is down: the journal's last changes written out
    /// (a drink made READY at the end of the grace is kept too), or this
    /// café leaves the shared line (until then, open buzzers and watches
    /// here were still told of their orders' progress at other cafés).
    pub async fn finish(self) {
        match self.0 {
            Running::Nothing => {}
            Running::Writer(journal, writer) => {
                journal.close();
                if tokio::time::timeout(FINAL_FLUSH, writer).await.is_err() {
                    warn!(
                        ?FINAL_FLUSH,
                        "the order store's last changes could not be written in time"
                    );
                }
            }
            Running::Following(following, shared) => following.leave(&shared).await,
        }
    }
}
