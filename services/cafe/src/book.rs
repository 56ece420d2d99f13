//! The order book: every order the café knows, the line of orders waiting
//! for a barista, and the channels that tell customers what happens.
//!
//! All of it sits behind one `std::sync::Mutex`. That is the right lock
//! here: every critical section is a few map and queue operations with no
//! `.await` inside, so a waiting thread never waits long, and an async mutex
//! would only add cost. (Holding a std guard across `.await` could deadlock a
//! runtime worker; clippy's `await_holding_lock` is denied workspace-wide.)
//!
//! How news travels, without anyone polling:
//! - each order has a `tokio::sync::watch` channel holding its [`OrderState`]:
//!   a buzzer subscribes and is woken on every change. Status changes are
//!   appended to the state's history, so a slow reader still sees `BREWING`
//!   before `READY`; queue positions only keep the latest value.
//! - the board is a `tokio::sync::broadcast` channel of every status change
//!   of every order.
//! - baristas with nothing to do wait on a [`Notify`], woken when an order
//!   joins the line or the café closes.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use cafe_core::order::{FieldViolation, NewOrder, Order, OrderId, OrderStatus};
use tokio::{
    sync::{Notify, broadcast, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::error::CafeError;

/// How many finished orders the café remembers for `GetOrder` and
/// `WatchOrder`; older ones are forgotten so memory stays bounded.
pub const FINISHED_ORDERS_KEPT: usize = 10_000;

/// How many board updates a slow board watcher may fall behind before it
/// misses some.
const BOARD_BACKLOG: usize = 1024;

/// What a buzzer knows about one order.
#[derive(Debug, Clone)]
pub struct OrderState {
    /// The order as it was after each status change, with its place in
    /// line at that moment, oldest first; the last one is the order now.
    /// Never empty.
    pub history: Vec<OrderUpdate>,
    /// 1 for the next order to be brewed; 0 once it has left the line.
    pub queue_position: u32,
}

impl OrderState {
    /// The order as it is now.
    pub fn current(&self) -> &Order {
        &self
            .history
            .last()
            .expect("an order always has its placed state")
            .order
    }
}

/// One status change, as buzzers and the board show it.
#[derive(Debug, Clone)]
pub struct OrderUpdate {
    /// The order after the change.
    pub order: Order,
    /// Its place in line at that moment (0 when not queued).
    pub queue_position: u32,
}

/// One order in the book, shared by the book, the barista brewing it and
/// every buzzer watching it. Dropped when all of them let go.
#[derive(Debug)]
pub struct OrderEntry {
    id: OrderId,
    /// The secret that lets the customer who placed the order cancel it.
    claim_token: String,
    /// The request it was placed with, to match idempotent retries.
    request: NewOrder,
    state: watch::Sender<OrderState>,
    /// Cancelled when the order is cancelled, so a barista brewing it stops
    /// and is free for the next order.
    stop: CancellationToken,
    /// When the customer at the counter stops waiting (their gRPC deadline),
    /// passed on to a remote barista with the brew.
    deadline: Option<Instant>,
    /// The trace of the call that placed the order. The barista who brews
    /// it runs in another task, long after the call's span was current, so
    /// the context travels with the order and the brew's span joins it. An
    /// `opentelemetry::Context` only names the span; holding it does not
    /// keep that span open (a `tracing::Span` would, for as long as the book
    /// remembers the order).
    trace: opentelemetry::Context,
}

impl OrderEntry {
    /// The order's id.
    pub fn id(&self) -> &OrderId {
        &self.id
    }

    /// The claim token, for the customer who placed the order only.
    pub fn claim_token(&self) -> &str {
        &self.claim_token
    }

    /// The order as it is now.
    pub fn snapshot(&self) -> Order {
        self.state.borrow().current().clone()
    }

    /// The order and its place in line, as it is now.
    pub fn update(&self) -> OrderUpdate {
        let state = self.state.borrow();
        OrderUpdate {
            order: state.current().clone(),
            queue_position: state.queue_position,
        }
    }

    /// A receiver that is woken on every change to this order.
    pub fn subscribe(&self) -> watch::Receiver<OrderState> {
        self.state.subscribe()
    }

    /// When the customer stops waiting, if they said.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The trace context of the call that placed the order, for the spans
    /// of whoever brews it ([`cafe_core::propagation::join_trace`]).
    pub fn trace_context(&self) -> &opentelemetry::Context {
        &self.trace
    }

    /// Resolves once the order is cancelled while a barista holds it.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Waits until the order reaches a final status and returns it then.
    pub async fn finished(&self) -> Order {
        let mut state = self.state.subscribe();
        // `wait_for` checks the current value first, so an order that is
        // already final returns at once. The sender lives in `self`, so the
        // channel cannot close while we wait.
        let state = state
            .wait_for(|state| state.current().status.is_final())
            .await
            .expect("the sender lives as long as the entry");
        state.current().clone()
    }
}

/// The result of placing an order.
#[derive(Debug)]
pub struct Placed {
    /// The order (new, or the one placed earlier with the same request id).
    pub entry: Arc<OrderEntry>,
    /// False when an earlier order with the same request id was returned.
    pub is_new: bool,
}

/// Every order the café knows, and the line for the baristas.
#[derive(Debug)]
pub struct OrderBook {
    state: Mutex<BookState>,
    /// Wakes an idle barista when an order joins the line, or all of them
    /// when the café closes.
    work: Notify,
    board: broadcast::Sender<OrderUpdate>,
    /// Cancelled when the café closes: board streams end on it.
    closing: CancellationToken,
    queue_capacity: usize,
    finished_kept: usize,
}

#[derive(Debug, Default)]
struct BookState {
    orders: HashMap<OrderId, Arc<OrderEntry>>,
    /// (customer, request id) → the order placed with them.
    by_request: HashMap<(String, String), OrderId>,
    /// Orders waiting for a barista, first come first served.
    line: VecDeque<Arc<OrderEntry>>,
    /// Final orders, oldest first, so the oldest can be forgotten.
    finished: VecDeque<OrderId>,
    closed: bool,
    /// Set while no barista can be reached: new orders are refused with it.
    unavailable: Option<String>,
}

impl OrderBook {
    /// An empty book whose line holds at most `queue_capacity` orders.
    pub fn new(queue_capacity: usize) -> Self {
        Self::with_retention(queue_capacity, FINISHED_ORDERS_KEPT)
    }

    /// Like [`OrderBook::new`], remembering at most `finished_kept` final
    /// orders.
    pub fn with_retention(queue_capacity: usize, finished_kept: usize) -> Self {
        OrderBook {
            state: Mutex::new(BookState::default()),
            work: Notify::new(),
            board: broadcast::channel(BOARD_BACKLOG).0,
            closing: CancellationToken::new(),
            queue_capacity,
            finished_kept,
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
    /// earlier by the same customer with the same request id. The current
    /// span's trace context is kept with a new order (see
    /// [`OrderEntry::trace_context`]).
    pub fn place(&self, request: NewOrder) -> Result<Placed, CafeError> {
        self.place_until(request, None)
    }

    /// Like [`OrderBook::place`], for a customer who waits until `deadline`
    /// at most.
    pub fn place_until(
        &self,
        request: NewOrder,
        deadline: Option<Instant>,
    ) -> Result<Placed, CafeError> {
        let mut book = self.lock();

        // A retry of an order already accepted gets that order back, even
        // while the café is closing or has no barista: it was not lost.
        let request_key = request
            .request_id
            .as_ref()
            .map(|rid| (request.customer.to_string(), rid.clone()));
        if let Some(key) = &request_key
            && let Some(entry) = book.by_request.get(key).and_then(|id| book.orders.get(id))
        {
            // A retry of an order already placed: return it, unless the
            // key is being reused for a different drink.
            let earlier = &entry.request;
            if earlier.drink.id != request.drink.id || earlier.size != request.size {
                return Err(CafeError::InvalidRequest(vec![FieldViolation {
                    field: "request_id",
                    description: format!(
                        "request_id {:?} was already used for order {} ({} {}): use a new request_id for a different drink",
                        key.1, entry.id, earlier.size, earlier.drink.id
                    ),
                }]));
            }
            return Ok(Placed {
                entry: Arc::clone(entry),
                is_new: false,
            });
        }

        if book.closed {
            return Err(CafeError::Closing);
        }
        if let Some(reason) = &book.unavailable {
            return Err(CafeError::NoBarista(reason.clone()));
        }
        if book.line.len() >= self.queue_capacity {
            return Err(CafeError::QueueFull {
                capacity: self.queue_capacity,
            });
        }

        let mut id = OrderId::random();
        while book.orders.contains_key(&id) {
            id = OrderId::random();
        }
        let order = Order::place(id.clone(), &request);
        let queue_position = book.line.len() as u32 + 1;
        let entry = Arc::new(OrderEntry {
            id: id.clone(),
            claim_token: uuid::Uuid::new_v4().simple().to_string(),
            request,
            state: watch::Sender::new(OrderState {
                history: vec![OrderUpdate {
                    order: order.clone(),
                    queue_position,
                }],
                queue_position,
            }),
            stop: CancellationToken::new(),
            deadline,
            // Placing happens inside the handler's span: that span becomes
            // the parent of the brew's spans, wherever they run.
            trace: cafe_core::propagation::current_context(),
        });
        book.orders.insert(id.clone(), Arc::clone(&entry));
        if let Some(key) = request_key {
            book.by_request.insert(key, id);
        }
        book.line.push_back(Arc::clone(&entry));
        // Nobody may be listening to the board: a send error just means that.
        let _ = self.board.send(OrderUpdate {
            order,
            queue_position,
        });
        drop(book);

        // Wake one idle barista; if none is idle, the permit is kept and the
        // next barista to ask for work finds the order at once.
        self.work.notify_one();
        Ok(Placed {
            entry,
            is_new: true,
        })
    }

    /// Waits for the next order in line and takes it out of the line.
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
                if let Some(entry) = book.line.pop_front() {
                    renumber(&book.line);
                    return Some(entry);
                }
                if book.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks an order as being brewed by `barista`. Returns false if it was
    /// cancelled in the meantime and must not be brewed. An order already
    /// brewing may start again with another barista: a remote barista went
    /// away and another took the order over.
    pub fn start_brewing(&self, entry: &OrderEntry, barista: &str) -> bool {
        let _book = self.lock();
        self.change(entry, |order| {
            matches!(order.status, OrderStatus::Queued | OrderStatus::Brewing).then(|| {
                order.status = OrderStatus::Brewing;
                order.barista = Some(barista.to_owned());
                order.started_at = Some(SystemTime::now());
                order.note = None;
            })
        })
    }

    /// Tells the customer that the barista on their order went away and it
    /// is being retried (the order keeps its status; `note` says why).
    /// Returns false if the order has ended.
    pub fn barista_left(&self, entry: &OrderEntry, note: &str) -> bool {
        let _book = self.lock();
        self.change(entry, |order| {
            (!order.status.is_final()).then(|| {
                order.note = Some(note.to_owned());
            })
        })
    }

    /// Refuses new orders with `reason` while no barista can be reached, or
    /// takes them again (`None`).
    pub fn set_unavailable(&self, reason: Option<String>) {
        self.lock().unavailable = reason;
    }

    /// Marks a brewing order as ready. Returns false if it had already ended
    /// (it was cancelled while brewing).
    pub fn mark_ready(&self, entry: &OrderEntry) -> bool {
        let changed = {
            let _book = self.lock();
            self.change(entry, |order| {
                (order.status == OrderStatus::Brewing).then(|| {
                    order.status = OrderStatus::Ready;
                    order.ready_at = Some(SystemTime::now());
                })
            })
        };
        if changed {
            self.remember_finished(entry);
        }
        changed
    }

    /// Marks an order as failed with a reason, unless it has already ended.
    pub fn mark_failed(&self, entry: &OrderEntry, reason: &str) -> bool {
        self.end(entry, OrderStatus::Failed, reason)
    }

    /// Cancels an order on behalf of the customer holding `claim_token`.
    /// A queued order leaves the line; a brewing one is stopped and its
    /// barista freed. A finished order cannot be cancelled.
    pub fn cancel(&self, id: &str, claim_token: &str, reason: &str) -> Result<Order, CafeError> {
        let entry = self.get(id)?;
        // Compare in constant time: how long the comparison takes must not
        // tell an attacker how much of a guessed token was right.
        if !constant_time_eq(entry.claim_token.as_bytes(), claim_token.as_bytes()) {
            return Err(CafeError::WrongClaimToken(entry.id.clone()));
        }
        if self.end(&entry, OrderStatus::Cancelled, reason) {
            return Ok(entry.snapshot());
        }
        let order = entry.snapshot();
        if order.status == OrderStatus::Cancelled {
            // Cancelling twice is not an error: the customer gets what they
            // asked for.
            return Ok(order);
        }
        Err(CafeError::NotCancellable {
            id: entry.id.clone(),
            status: order.status,
        })
    }

    /// Cancels an order without a claim token, because its customer left
    /// (a counter customer whose call was cancelled or timed out).
    pub fn abandon(&self, entry: &OrderEntry, reason: &str) -> bool {
        self.end(entry, OrderStatus::Cancelled, reason)
    }

    /// Ends a queued or brewing order with `status`; false if it had already
    /// ended.
    fn end(&self, entry: &OrderEntry, status: OrderStatus, reason: &str) -> bool {
        let changed = {
            let mut book = self.lock();
            let changed = self.change(entry, |order| {
                (!order.status.is_final()).then(|| {
                    order.status = status;
                    order.note = Some(reason.to_owned());
                })
            });
            if changed {
                let before = book.line.len();
                book.line.retain(|queued| queued.id != entry.id);
                if book.line.len() != before {
                    renumber(&book.line);
                }
            }
            changed
        };
        if changed {
            // Stops the barista if one was brewing it.
            entry.stop.cancel();
            self.remember_finished(entry);
        }
        changed
    }

    /// Applies `change` to the order's current state, if it returns
    /// `Some(())`: records the new state in the history, wakes its buzzers
    /// and tells the board. Callers hold the book's lock, so changes to one
    /// order never interleave.
    fn change(&self, entry: &OrderEntry, change: impl FnOnce(&mut Order) -> Option<()>) -> bool {
        let mut update = None;
        entry.state.send_if_modified(|state| {
            let mut order = state.current().clone();
            if change(&mut order).is_none() {
                return false;
            }
            if order.status != OrderStatus::Queued {
                state.queue_position = 0;
            }
            let change = OrderUpdate {
                order,
                queue_position: state.queue_position,
            };
            update = Some(change.clone());
            state.history.push(change);
            true
        });
        match update {
            Some(update) => {
                let _ = self.board.send(update);
                true
            }
            None => false,
        }
    }

    /// Notes that an order has ended, and forgets the oldest ended orders
    /// beyond what the café keeps.
    fn remember_finished(&self, entry: &OrderEntry) {
        let mut book = self.lock();
        book.finished.push_back(entry.id.clone());
        while book.finished.len() > self.finished_kept {
            let Some(old) = book.finished.pop_front() else {
                break;
            };
            if let Some(forgotten) = book.orders.remove(&old)
                && let Some(rid) = &forgotten.request.request_id
            {
                book.by_request
                    .remove(&(forgotten.request.customer.to_string(), rid.clone()));
            }
        }
    }

    /// The order with this id.
    pub fn get(&self, id: &str) -> Result<Arc<OrderEntry>, CafeError> {
        self.lock()
            .orders
            .get(&OrderId::from(id))
            .cloned()
            .ok_or_else(|| CafeError::OrderNotFound(id.to_owned()))
    }

    /// Every order that has not ended yet, oldest first, and a receiver for
    /// every change from this moment on. Taken under one lock, so no change
    /// falls between the two.
    pub fn watch_board(&self) -> (Vec<OrderUpdate>, broadcast::Receiver<OrderUpdate>) {
        let book = self.lock();
        let receiver = self.board.subscribe();
        let mut open: Vec<OrderUpdate> = book
            .orders
            .values()
            .map(|entry| entry.update())
            .filter(|update| !update.order.status.is_final())
            .collect();
        open.sort_by_key(|update| update.order.placed_at);
        (open, receiver)
    }

    /// How many orders are waiting in line.
    pub fn queue_len(&self) -> usize {
        self.lock().line.len()
    }

    /// Whether the café has closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Resolves when the café closes.
    pub async fn closed(&self) {
        self.closing.cancelled().await
    }

    /// Fails every order that has not ended, telling its customer why: the
    /// last step of a shutdown whose grace ran out, so that no buzzer or
    /// counter customer is left waiting for a drink that will never come.
    pub fn fail_unfinished(&self, reason: &str) -> usize {
        let open: Vec<Arc<OrderEntry>> = self.lock().orders.values().cloned().collect();
        open.iter()
            .filter(|entry| self.end(entry, OrderStatus::Failed, reason))
            .count()
    }

    /// Closes the café: no new orders; every order still in line is
    /// cancelled (its customer is told why); idle baristas go home, busy ones
    /// finish their drink first; board streams end. Returns how many queued
    /// orders were cancelled.
    pub fn close(&self, reason: &str) -> usize {
        let waiting: Vec<Arc<OrderEntry>> = {
            let mut book = self.lock();
            book.closed = true;
            book.line.iter().cloned().collect()
        };
        let cancelled = waiting
            .iter()
            .filter(|entry| self.end(entry, OrderStatus::Cancelled, reason))
            .count();
        self.closing.cancel();
        self.work.notify_waiters();
        cancelled
    }
}

/// Tells every order still in line its new place, after one left.
fn renumber(line: &VecDeque<Arc<OrderEntry>>) {
    for (index, entry) in line.iter().enumerate() {
        let position = index as u32 + 1;
        entry.state.send_if_modified(|state| {
            let moved = state.queue_position != position;
            state.queue_position = position;
            moved
        });
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latte(customer: &str, request_id: &str) -> NewOrder {
        NewOrder::parse(customer, "latte", Ok(None), request_id).unwrap()
    }

    #[test]
    fn orders_wait_in_line_first_come_first_served() {
        let book = OrderBook::new(10);
        let first = book.place(latte("Ada", "")).unwrap().entry;
        let second = book.place(latte("Bo", "")).unwrap().entry;
        assert_eq!(first.update().queue_position, 1);
        assert_eq!(second.update().queue_position, 2);

        let taken = tokio_test_block_on(book.next_in_line()).unwrap();
        assert_eq!(taken.id(), first.id());
        assert_eq!(
            second.update().queue_position,
            1,
            "moves up when the first leaves"
        );
    }

    #[test]
    fn a_full_line_refuses_orders_and_a_closed_cafe_refuses_all() {
        let book = OrderBook::new(1);
        book.place(latte("Ada", "")).unwrap();
        assert!(matches!(
            book.place(latte("Bo", "")),
            Err(CafeError::QueueFull { capacity: 1 })
        ));
        assert_eq!(book.close("closing"), 1);
        assert!(matches!(
            book.place(latte("Cy", "")),
            Err(CafeError::Closing)
        ));
    }

    #[test]
    fn the_same_request_id_returns_the_same_order() {
        let book = OrderBook::new(10);
        let first = book.place(latte("Ada", "r-1")).unwrap();
        let again = book.place(latte("Ada", "r-1")).unwrap();
        let other_customer = book.place(latte("Bo", "r-1")).unwrap();
        assert!(first.is_new && !again.is_new && other_customer.is_new);
        assert_eq!(first.entry.id(), again.entry.id());
        assert_ne!(first.entry.id(), other_customer.entry.id());
        assert_eq!(book.queue_len(), 2);

        let espresso = NewOrder::parse("Ada", "espresso", Ok(None), "r-1").unwrap();
        assert!(matches!(
            book.place(espresso),
            Err(CafeError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_retry_gets_its_order_back_even_while_closing() {
        let book = OrderBook::new(10);
        let first = book.place(latte("Ada", "r-1")).unwrap().entry;
        book.close("closing");
        let again = book.place(latte("Ada", "r-1")).unwrap();
        assert!(!again.is_new);
        assert_eq!(again.entry.id(), first.id());
        assert!(matches!(
            book.place(latte("Ada", "r-2")),
            Err(CafeError::Closing)
        ));
    }

    #[test]
    fn cancelling_needs_the_token_and_an_unfinished_order() {
        let book = OrderBook::new(10);
        let entry = book.place(latte("Ada", "")).unwrap().entry;
        let id = entry.id().to_string();
        assert!(matches!(
            book.cancel(&id, "guess", "x"),
            Err(CafeError::WrongClaimToken(_))
        ));
        let cancelled = book
            .cancel(&id, entry.claim_token(), "changed my mind")
            .unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(book.queue_len(), 0);

        let brewed = book.place(latte("Bo", "")).unwrap().entry;
        assert!(book.start_brewing(&brewed, "Ana"));
        assert!(book.mark_ready(&brewed));
        let err = book
            .cancel(brewed.id().as_str(), brewed.claim_token(), "x")
            .unwrap_err();
        assert!(matches!(
            err,
            CafeError::NotCancellable {
                status: OrderStatus::Ready,
                ..
            }
        ));
    }

    #[test]
    fn history_keeps_every_status_change_in_order() {
        let book = OrderBook::new(10);
        let entry = book.place(latte("Ada", "")).unwrap().entry;
        assert!(book.start_brewing(&entry, "Ana"));
        assert!(book.mark_ready(&entry));
        assert!(
            !book.mark_failed(&entry, "too late"),
            "a final order stays final"
        );
        let statuses: Vec<_> = entry
            .subscribe()
            .borrow()
            .history
            .iter()
            .map(|change| change.order.status)
            .collect();
        assert_eq!(
            statuses,
            [
                OrderStatus::Queued,
                OrderStatus::Brewing,
                OrderStatus::Ready
            ]
        );
    }

    #[test]
    fn old_finished_orders_are_forgotten() {
        let book = OrderBook::with_retention(10, 2);
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let entry = book.place(latte("Ada", &format!("r{i}"))).unwrap().entry;
                book.abandon(&entry, "gone");
                entry.id().to_string()
            })
            .collect();
        assert!(book.get(&ids[0]).is_err());
        assert!(book.get(&ids[1]).is_ok() && book.get(&ids[2]).is_ok());
    }

    /// Runs a future to completion on a throwaway current-thread runtime.
    fn tokio_test_block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }
}
