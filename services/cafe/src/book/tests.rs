//! The book's unit tests: the line and its places, idempotency, closing,
//! history, retention, and waking one idle barista per order (counted
//! with wakers that count). Following an order is `follow/tests.rs`.

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll},
};

use futures::{FutureExt, task::ArcWake};

use super::*;
use cafe_domain::order::NewOrder;

pub(super) fn latte(customer: &str, request_id: &str) -> NewOrder {
    NewOrder::parse(customer, "latte", Ok(None), request_id).unwrap()
}

pub(crate) fn open_book(capacity: usize) -> Arc<OrderBook> {
    Arc::new(OrderBook::new(capacity, Arc::new(Availability::new())))
}

pub(crate) fn place(book: &OrderBook, customer: &str) -> Arc<OrderEntry> {
    book.place(latte(customer, ""), Origin::default())
        .unwrap()
        .entry
}

/// Takes the next order when there is one (never waits).
pub(super) fn take(book: &OrderBook) -> Arc<OrderEntry> {
    book.claim().order().expect("an order in line")
}

/// A waker that counts how often it is woken.
#[derive(Default)]
pub(crate) struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        this.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `future` once with a counting waker.
pub(crate) fn poll_counting<F: Future + Unpin>(
    future: &mut F,
    waker: &Arc<CountingWaker>,
) -> Poll<F::Output> {
    let waker = futures::task::waker(Arc::clone(waker));
    future.poll_unpin(&mut Context::from_waker(&waker))
}

#[test]
fn orders_wait_in_line_first_come_first_served() {
    let book = open_book(10);
    let first = book.place(latte("Ada", ""), Origin::default()).unwrap();
    let second = book.place(latte("Bo", ""), Origin::default()).unwrap();
    assert_eq!(first.queue_position, 1);
    assert_eq!(second.queue_position, 2);

    let taken = take(&book);
    assert_eq!(taken.id(), first.entry.id());
    assert_eq!(book.position(&first.entry), None, "out of the line");
    assert_eq!(
        book.position(&second.entry),
        Some(1),
        "moves up when the first leaves"
    );
}

#[test]
fn leaving_from_the_middle_moves_up_only_those_behind() {
    let book = open_book(10);
    let orders: Vec<_> = ["Ada", "Bo", "Cy", "Di"]
        .iter()
        .map(|name| place(&book, name))
        .collect();
    assert!(book.abandon(&orders[1], "left"));
    let positions: Vec<_> = orders.iter().map(|o| book.position(o)).collect();
    assert_eq!(positions, [Some(1), None, Some(2), Some(3)]);
    assert_eq!(book.queue_len(), 3);
    assert_eq!(take(&book).id(), orders[0].id());
    assert_eq!(
        take(&book).id(),
        orders[2].id(),
        "the one who left is skipped"
    );
}

#[test]
fn an_order_put_back_takes_its_own_place_again_and_closing_cancels_it() {
    let book = open_book(10);
    let orders: Vec<_> = ["Ada", "Bo", "Cy"]
        .iter()
        .map(|name| place(&book, name))
        .collect();
    // Taken by the remote dispatcher, turned away by a full replica: back
    // at the front, ahead of those who came after, and the next taken.
    let ada = take(&book);
    assert_eq!(book.position(&orders[1]), Some(1));
    assert!(book.put_back(&ada, "closed"));
    let positions: Vec<_> = orders.iter().map(|o| book.position(o)).collect();
    assert_eq!(positions, [Some(1), Some(2), Some(3)]);
    assert_eq!(take(&book).id(), orders[0].id());

    // One that ended meanwhile does not come back.
    let bo = take(&book);
    assert!(book.abandon(&bo, "left"));
    assert!(!book.put_back(&bo, "closed"));
    assert_eq!(book.position(&bo), None);

    // The café closed while it was away: it ends as the line did.
    let cy = take(&book);
    book.close("closing");
    assert!(book.put_back(&cy, "the café closed"));
    assert_eq!(cy.status(), OrderStatus::Cancelled);
    assert_eq!(book.queue_len(), 0);
}

#[test]
fn a_full_line_refuses_orders_and_a_closed_cafe_refuses_all() {
    let book = open_book(1);
    place(&book, "Ada");
    assert!(matches!(
        book.place(latte("Bo", ""), Origin::default()),
        Err(CafeError::QueueFull { capacity: 1 })
    ));
    assert_eq!(book.close("closing"), 1);
    assert!(book.is_closed());
    assert!(matches!(
        book.place(latte("Cy", ""), Origin::default()),
        Err(CafeError::Closing)
    ));
}

#[test]
fn the_same_request_id_returns_the_same_order() {
    let book = open_book(10);
    let first = book.place(latte("Ada", "r-1"), Origin::default()).unwrap();
    let again = book.place(latte("Ada", "r-1"), Origin::default()).unwrap();
    let other_customer = book.place(latte("Bo", "r-1"), Origin::default()).unwrap();
    assert!(first.is_new && !again.is_new && other_customer.is_new);
    assert_eq!(first.entry.id(), again.entry.id());
    assert_eq!(again.queue_position, 1);
    assert_ne!(first.entry.id(), other_customer.entry.id());
    assert_eq!(book.queue_len(), 2);

    let espresso = NewOrder::parse("Ada", "espresso", Ok(None), "r-1").unwrap();
    assert!(matches!(
        book.place(espresso, Origin::default()),
        Err(CafeError::InvalidRequest(_))
    ));
}

#[test]
fn a_retry_gets_its_order_back_even_while_closing() {
    let book = open_book(10);
    let first = book
        .place(latte("Ada", "r-1"), Origin::default())
        .unwrap()
        .entry;
    book.close("closing");
    let again = book.place(latte("Ada", "r-1"), Origin::default()).unwrap();
    assert!(!again.is_new);
    assert_eq!(again.entry.id(), first.id());
    assert!(matches!(
        book.place(latte("Ada", "r-2"), Origin::default()),
        Err(CafeError::Closing)
    ));
}

#[test]
fn orders_are_refused_while_no_barista_can_be_reached() {
    let availability = Arc::new(Availability::new());
    let book = OrderBook::new(10, Arc::clone(&availability));
    availability.no_barista("none up".into());
    assert!(matches!(
        book.place(latte("Ada", ""), Origin::default()),
        Err(CafeError::NoBarista(why)) if why == "none up"
    ));
    availability.barista_reachable();
    assert!(book.place(latte("Ada", ""), Origin::default()).is_ok());
}

#[test]
fn cancelling_needs_the_token_and_an_unfinished_order() {
    let book = open_book(10);
    let entry = place(&book, "Ada");
    let id = entry.id().to_string();
    assert!(matches!(
        book.cancel(&id, "guess", "x"),
        Err(CafeError::WrongClaimToken(_))
    ));
    let token = entry.claim_token().to_string();
    let cancelled = book.cancel(&id, &token, "changed my mind").unwrap().0;
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.note.as_deref(), Some("changed my mind"));
    assert_eq!(book.queue_len(), 0);
    assert_eq!(
        book.cancel(&id, &token, "again").unwrap().0.status,
        OrderStatus::Cancelled,
        "cancelling twice is harmless"
    );

    let brewed = place(&book, "Bo");
    assert!(book.start(&brewed, "Ana".into()));
    assert!(book.ready(&brewed));
    let err = book
        .cancel(brewed.id().as_str(), &brewed.claim_token().to_string(), "x")
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
    let book = open_book(10);
    let entry = place(&book, "Ada");
    assert!(book.start(&entry, "Ana".into()));
    assert!(book.ready(&entry));
    assert!(!book.fail(&entry, "too late"), "a final order stays final");
    let statuses: Vec<_> = entry
        .subscribe()
        .borrow()
        .iter()
        .map(|change| (change.status, change.queue_position))
        .collect();
    assert_eq!(
        statuses,
        [
            (OrderStatus::Queued, 1),
            (OrderStatus::Brewing, 0),
            (OrderStatus::Ready, 0)
        ]
    );
    let order = entry.snapshot();
    assert_eq!(order.barista.as_deref(), Some("Ana"));
    assert!(order.started_at.is_some() && order.ready_at.is_some());
}

#[test]
fn old_finished_orders_are_forgotten() {
    let book = Arc::new(OrderBook::with_retention(
        10,
        Arc::new(Availability::new()),
        2,
    ));
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let entry = book
                .place(latte("Ada", &format!("r{i}")), Origin::default())
                .unwrap()
                .entry;
            book.abandon(&entry, "gone");
            entry.id().to_string()
        })
        .collect();
    assert!(book.get(&ids[0]).is_err());
    assert!(book.get(&ids[1]).is_ok() && book.get(&ids[2]).is_ok());
    // The forgotten order's request id is free again.
    assert!(
        book.place(latte("Ada", "r0"), Origin::default())
            .unwrap()
            .is_new
    );
}

#[test]
fn the_board_starts_with_the_open_orders_in_placing_order() {
    let book = open_book(10);
    let names = ["Ada", "Bo", "Cy", "Di"];
    let orders: Vec<_> = names.iter().map(|name| place(&book, name)).collect();
    take(&book);
    assert!(book.start(&orders[0], "Ana".into()));
    book.abandon(&orders[2], "left");
    let (open, mut updates) = book.watch_board();
    let shown: Vec<_> = open
        .iter()
        .map(|u| {
            (
                u.order.customer.to_string(),
                u.order.status,
                u.queue_position,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("Ada".into(), OrderStatus::Brewing, 0),
            ("Bo".into(), OrderStatus::Queued, 1),
            ("Di".into(), OrderStatus::Queued, 2),
        ]
    );
    // Then every change, with nothing built while nobody watched.
    assert!(book.ready(&orders[0]));
    let update = updates.try_recv().unwrap();
    assert_eq!(update.order.status, OrderStatus::Ready);
    assert!(updates.try_recv().is_err());
}

#[test]
fn the_memory_store_cancels_its_line_when_it_closes() {
    let book = open_book(10);
    let queued = place(&book, "Bo");
    assert_eq!(book.close("closing"), 1);
    assert_eq!(queued.status(), OrderStatus::Cancelled);
    assert!(!book.left_for_restart(&queued));
}
