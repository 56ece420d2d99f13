//! A property test of the order book's state machine: any interleaving of
//! what happens to orders keeps the book's promises.
//!
//! `proptest` writes random stories (placing with and without request ids,
//! taking, brewing, cancelling with right and wrong tokens, counter
//! deadlines, a barista going away, baristas out of reach and back, closing
//! and the grace's end) and runs each against the real [`OrderBook`], with
//! real [`Follower`]s and a board watcher reading along. After every step:
//! **nothing changes after a final state**, and **places in line are
//! consistent** (1..n in ticket order; every QUEUED order in line or in a
//! barista's hands; `counts()` agrees). At the end, **exactly one final
//! event per order**: in its history, by each follower, and on the board.
//!
//! It runs from a plain `#[test]` with `now_or_never`: outside a runtime the
//! book tells every line move at once and the memory store never waits, so
//! whatever a follower can yield after a step is ready when the step
//! returns, with no timing in the test. `PROPTEST_CASES=10000 cargo test
//! -p cafe-server --lib proptests` searches longer; failures are shrunk and
//! kept in `proptest-regressions/`.
//!
//! The same stories run on the SQLite journal (`store/proptests.rs`,
//! through [`tell`] with a [`Keeping`]): the book writes every change to
//! it, and the story flushes it after each step, so a follower yields a
//! change once it is durable, as a customer is told it. There closing
//! keeps the open orders for the restart instead of ending them, and
//! their followers end with the order still open.

use std::collections::HashMap;

use futures::FutureExt;
use proptest::{prelude::*, sample::Index};
use tokio::sync::broadcast::error::TryRecvError;

use super::*;
use cafe_domain::order::NewOrder;

/// How many stories a run tries unless `PROPTEST_CASES` says.
const CASES: u32 = 128;

mod checks;
mod steps;
pub(crate) use steps::{Step, step};

/// A story's book that writes its changes down: the recorder it writes to,
/// and how the story waits, after each step, until they are durable.
pub(crate) struct Keeping {
    pub(crate) recorder: Arc<dyn Recorder>,
    pub(crate) flush: Box<dyn FnMut()>,
}

/// One order placed in the story, and what its followers have yielded.
struct Tracked {
    entry: Arc<OrderEntry>,
    /// A buzzer's follower: every change and the places in line.
    buzzer: Follower,
    /// A counter customer's: every change, no places.
    counter: Follower,
    buzzer_saw: Vec<Update>,
    counter_saw: Vec<Update>,
    /// Whether a follower returned `None` (it ended).
    buzzer_ended: bool,
    counter_ended: bool,
}

/// The story so far: the book, every order placed, the orders in
/// baristas' hands, and what the board showed.
pub(crate) struct Cafe {
    book: Arc<OrderBook>,
    /// After each step, until the book's changes are durable (`None`: the
    /// memory store, where they always are).
    flush: Option<Box<dyn FnMut()>>,
    availability: Arc<Availability>,
    orders: Vec<Tracked>,
    /// Orders a barista took from the line, in the order they were taken
    /// (finished ones stay: a late call on them must change nothing).
    held: Vec<Arc<OrderEntry>>,
    board: broadcast::Receiver<Update>,
    board_saw: HashMap<String, Vec<OrderStatus>>,
}

fn statuses(history: &[Change]) -> Vec<OrderStatus> {
    history.iter().map(|change| change.status).collect()
}

fn history_of(entry: &OrderEntry) -> Vec<Change> {
    entry.subscribe().borrow().clone()
}

/// Reads everything a follower can yield now, without waiting. A
/// follower that ended with its order still open (left for the restart of
/// a café with a journal) is not read again: its customer was told to
/// come back, and the order may still change (a cancel while the café
/// closes). One that ended on a final status is, and must yield nothing.
fn drain(follower: &mut Follower, saw: &mut Vec<Update>, ended: &mut bool) {
    let left_open = |saw: &[Update]| saw.last().is_some_and(|last| !last.order.status.is_final());
    if *ended && left_open(saw) {
        return;
    }
    while let Some(next) = follower.next().now_or_never() {
        match next.expect("the memory store is always writable") {
            Some(update) => {
                assert!(!*ended, "a follower yielded after it ended");
                saw.push(update);
            }
            None => {
                *ended = true;
                return;
            }
        }
    }
}

impl Cafe {
    fn open(queue_capacity: usize, keeping: Option<Keeping>) -> Self {
        let availability = Arc::new(Availability::new());
        let (book, flush) = match keeping {
            None => (
                OrderBook::new(queue_capacity, Arc::clone(&availability)),
                None,
            ),
            Some(Keeping { recorder, flush }) => (
                OrderBook::with_journal(
                    queue_capacity,
                    Arc::clone(&availability),
                    FINISHED_ORDERS_KEPT,
                    Some(recorder),
                ),
                Some(flush),
            ),
        };
        let book = Arc::new(book);
        let (open, board) = book.watch_board();
        assert!(open.is_empty());
        Cafe {
            book,
            flush,
            availability,
            orders: Vec::new(),
            held: Vec::new(),
            board,
            board_saw: HashMap::new(),
        }
    }

    fn pick(&self, index: &Index) -> Option<Arc<OrderEntry>> {
        (!self.orders.is_empty())
            .then(|| Arc::clone(&self.orders[index.index(self.orders.len())].entry))
    }

    fn pick_held(&self, index: &Index) -> Option<Arc<OrderEntry>> {
        (!self.held.is_empty()).then(|| Arc::clone(&self.held[index.index(self.held.len())]))
    }

    /// Runs `call` on `entry` and checks that it changed the order exactly
    /// when it says so, by one change.
    fn changes(&self, entry: &OrderEntry, call: impl FnOnce(&OrderBook, &OrderEntry) -> bool) {
        let before = history_of(entry).len();
        let changed = call(&self.book, entry);
        let after = history_of(entry).len();
        assert_eq!(
            after,
            before + usize::from(changed),
            "{} says changed={changed} but its history went from {before} to {after} changes",
            entry.id()
        );
    }

    fn run(&mut self, step: &Step) {
        match step {
            Step::Place {
                customer,
                request_id,
                espresso,
            } => self.place(*customer, *request_id, *espresso),
            Step::Take => {
                if let Some(entry) = self.book.claim().order() {
                    assert_eq!(entry.status(), OrderStatus::Queued, "taken from the line");
                    assert_eq!(self.book.position(&entry), None, "out of the line");
                    self.held.push(entry);
                }
            }
            Step::Start(index) => {
                if let Some(entry) = self.pick_held(index) {
                    let was = entry.status();
                    self.changes(&entry, |book, entry| {
                        book.start(entry, Arc::from("barista-1"))
                    });
                    // Only an order still open may be (re)started.
                    assert_eq!(entry.status() == OrderStatus::Brewing, !was.is_final());
                }
            }
            Step::Finish(index) => {
                if let Some(entry) = self.pick_held(index) {
                    self.changes(&entry, |book, entry| book.ready(entry));
                }
            }
            Step::Fail(index) => {
                if let Some(entry) = self.pick_held(index) {
                    self.changes(&entry, |book, entry| {
                        book.fail(entry, "the barista burnt it")
                    });
                }
            }
            Step::BaristaLeft(index) => {
                if let Some(entry) = self.pick_held(index) {
                    let was = entry.status();
                    self.changes(&entry, |book, entry| {
                        book.note(entry, "the barista went away: retrying")
                    });
                    assert_eq!(entry.status(), was, "a barista leaving keeps the status");
                }
            }
            Step::Cancel { order, right_token } => {
                if let Some(entry) = self.pick(order) {
                    let was = entry.status();
                    let token = if *right_token {
                        entry.claim_token().to_string()
                    } else {
                        "not-the-token".to_owned()
                    };
                    let before = history_of(&entry).len();
                    let answer = self.book.cancel(entry.id().as_str(), &token, "cancelled");
                    let grew = history_of(&entry).len() - before;
                    match answer {
                        Err(CafeError::WrongClaimToken(_)) => {
                            assert!(!right_token);
                            assert_eq!(grew, 0, "a wrong token changes nothing");
                        }
                        Ok((order, _)) => {
                            assert!(*right_token);
                            assert_eq!(order.status, OrderStatus::Cancelled);
                            // Cancelling twice changes nothing the second time.
                            assert_eq!(grew, usize::from(was != OrderStatus::Cancelled));
                        }
                        Err(CafeError::NotCancellable { status, .. }) => {
                            assert!(*right_token && was.is_final() && status == was);
                            assert_eq!(grew, 0);
                        }
                        Err(other) => panic!("cancel answered {other:?}"),
                    }
                }
            }
            Step::Deadline(index) => {
                if let Some(entry) = self.pick(index) {
                    self.changes(&entry, |book, entry| {
                        book.abandon(entry, "the customer's deadline passed")
                    });
                }
            }
            Step::NoBarista => self.availability.no_barista("all out of reach".into()),
            Step::BaristaBack => self.availability.barista_reachable(),
            Step::Close => {
                let in_line = self.book.queue_len();
                let cancelled = self.book.close("closing");
                if self.book.keeps_line() {
                    // A journal keeps the line for the restart.
                    assert_eq!(cancelled, 0);
                } else {
                    // The memory store cancels exactly the line.
                    assert_eq!(cancelled, in_line);
                    assert_eq!(self.book.queue_len(), 0);
                }
                // Idle baristas go home.
                assert!(matches!(self.book.claim(), AtTheLine::ShiftOver));
            }
            Step::GraceOver => {
                let open = self.open_orders();
                let ended = self.book.grace_over("the grace ran out");
                if self.book.keeps_line() {
                    // Kept for the restart, BREWING: nothing ends.
                    assert_eq!(self.open_orders(), open);
                } else {
                    assert_eq!(ended, open);
                    assert_eq!(self.open_orders(), 0);
                }
            }
        }
    }

    fn open_orders(&self) -> usize {
        self.orders
            .iter()
            .filter(|tracked| !tracked.entry.status().is_final())
            .count()
    }

    fn place(&mut self, customer: u8, request_id: Option<u8>, espresso: bool) {
        let drink = if espresso { "espresso" } else { "latte" };
        let request_id = request_id.map(|id| format!("r-{id}")).unwrap_or_default();
        let customer = format!("customer {customer}");
        let request = NewOrder::parse(&customer, drink, Ok(None), &request_id).unwrap();
        let earlier = (!request_id.is_empty())
            .then(|| {
                self.orders.iter().find(|tracked| {
                    let asked = tracked.entry.request();
                    asked.customer.as_str() == customer
                        && asked.request_id.as_deref() == Some(request_id.as_str())
                })
            })
            .flatten()
            .map(|tracked| Arc::clone(&tracked.entry));
        let in_line = self.book.queue_len();
        match (self.book.place(request, Origin::default()), earlier) {
            (Ok(placed), Some(earlier)) => {
                assert!(!placed.is_new, "a retry gets its order back");
                assert_eq!(placed.entry.id(), earlier.id());
                assert_eq!(
                    placed.queue_position,
                    self.book.position(&earlier).unwrap_or(0)
                );
            }
            (Err(CafeError::InvalidRequest(violations)), Some(earlier)) => {
                // The request id was used for the other drink.
                assert_ne!(earlier.request().drink.id, drink);
                assert_eq!(violations[0].field, "request_id");
            }
            (Ok(placed), None) => {
                assert!(placed.is_new);
                assert!(!self.book.is_closed());
                assert_eq!(placed.queue_position as usize, in_line + 1, "at the end");
                let entry = placed.entry;
                let buzzer = self
                    .book
                    .follow(Arc::clone(&entry), Replay::FromPlacement)
                    .with_positions();
                let counter = self.book.follow(Arc::clone(&entry), Replay::FromPlacement);
                self.orders.push(Tracked {
                    entry,
                    buzzer,
                    counter,
                    buzzer_saw: Vec::new(),
                    counter_saw: Vec::new(),
                    buzzer_ended: false,
                    counter_ended: false,
                });
            }
            (Err(CafeError::Closing), None) => assert!(self.book.is_closed()),
            (Err(CafeError::QueueFull { capacity }), None) => assert!(in_line >= capacity),
            (Err(CafeError::NoBarista(_)), None) => {}
            (answer, earlier) => panic!("placing answered {answer:?} (earlier order: {earlier:?})"),
        }
    }

    /// Reads what every follower and the board have now.
    fn read_along(&mut self) {
        for tracked in &mut self.orders {
            drain(
                &mut tracked.buzzer,
                &mut tracked.buzzer_saw,
                &mut tracked.buzzer_ended,
            );
            drain(
                &mut tracked.counter,
                &mut tracked.counter_saw,
                &mut tracked.counter_ended,
            );
        }
        loop {
            match self.board.try_recv() {
                Ok(update) => self
                    .board_saw
                    .entry(update.order.id.to_string())
                    .or_default()
                    .push(update.order.status),
                Err(TryRecvError::Empty) => break,
                Err(error) => panic!("the board watcher: {error}"),
            }
        }
    }
}

impl Cafe {
    /// Every order the story placed.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Arc<OrderEntry>> {
        self.orders.iter().map(|tracked| &tracked.entry)
    }
}

/// Tells the story `steps` to a book of `queue_capacity` (kept as
/// `keeping` says), checking the invariants after every step; then the
/// café closes and its grace runs out, and every order must have ended
/// once (or, with a journal, be kept for the restart).
pub(crate) fn tell(queue_capacity: usize, steps: &[Step], keeping: Option<Keeping>) -> Cafe {
    let mut cafe = Cafe::open(queue_capacity, keeping);
    // The café closes and its grace runs out at the end of every story.
    for step in steps.iter().chain(&[Step::Close, Step::GraceOver]) {
        cafe.run(step);
        if let Some(flush) = &mut cafe.flush {
            flush();
        }
        cafe.read_along();
        cafe.check_invariants();
    }
    cafe.check_endings();
    cafe
}

pub(crate) fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_interleaving_keeps_the_books_promises(
        queue_capacity in 1..6usize,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        tell(queue_capacity, &steps, None);
    }
}
