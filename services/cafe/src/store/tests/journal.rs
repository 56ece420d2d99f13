//! The journal's tests: a book writing to a SQLite store through the
//! journal's writer, what it tells its followers only once durable, and the
//! book rebuilt from what it wrote.

use std::{sync::Arc, task::Poll};

use cafe_domain::order::{NewOrder, OrderStatus};

use super::{super::*, sqlite};
use crate::{
    availability::Availability,
    book::{
        OrderBook, Origin, REBREW_NOTE, Replay,
        tests::{CountingWaker, open_book, place, poll_counting},
    },
};

/// A book writing to `store`, its journal's writer running (until the
/// journal is closed: then the writer writes what is left, closes the store
/// and ends).
fn durable_book(
    store: &Store,
    finished_kept: usize,
) -> (Arc<OrderBook>, Arc<Journal>, tokio::task::JoinHandle<()>) {
    let availability = Arc::new(Availability::new());
    let journal = Arc::new(Journal::new());
    let book = Arc::new(OrderBook::with_journal(
        100,
        Arc::clone(&availability),
        finished_kept,
        Some(Arc::clone(&journal) as _),
    ));
    let writer = tokio::spawn(journal::write(
        Arc::clone(&journal),
        store.clone(),
        availability,
    ));
    (book, journal, writer)
}

fn latte(customer: &str, request_id: &str) -> NewOrder {
    NewOrder::parse(customer, "latte", Ok(None), request_id).unwrap()
}

#[tokio::test]
async fn the_journal_numbers_changes_and_marks_them_durable_once_written() {
    let (_dir, _url, store) = sqlite().await;
    let (book, journal, _writer) = durable_book(&store, 100);
    let placed = book.place(latte("Ada", ""), Origin::default()).unwrap();
    let seq = placed.entry.latest().seq;
    assert!(seq > 0, "a durable store numbers every change");
    book.durable(seq).await.expect("durable");
    assert!(book.is_durable(seq));
    assert_eq!(store.recover().await.unwrap().open.len(), 1);

    // Many changes at once are written together (group commit); every one
    // is durable once the last is.
    let entries: Vec<_> = (0..90)
        .map(|i| {
            book.place(latte(&format!("c{i}"), ""), Origin::default())
                .unwrap()
                .entry
        })
        .collect();
    journal.flushed().await;
    assert!(entries.iter().all(|e| book.is_durable(e.latest().seq)));
    assert_eq!(store.recover().await.unwrap().open.len(), 91);
}

#[tokio::test]
async fn a_follower_sees_the_ticket_and_ready_only_once_durable() {
    let (_dir, _url, store) = sqlite().await;
    let (book, _journal, _writer) = durable_book(&store, 100);
    let placed = book.place(latte("Ada", ""), Origin::default()).unwrap();
    let entry = Arc::clone(&placed.entry);
    let mut follower = book.follow(Arc::clone(&entry), Replay::FromPlacement);
    let ticket = follower.next().await.expect("durable").unwrap();
    assert_eq!(ticket.order.status, OrderStatus::Queued);
    assert!(book.is_durable(entry.latest().seq), "the ticket waited");

    assert!(book.start(&entry, "Ana".into()));
    assert!(book.ready(&entry));
    let mut last = None;
    while let Some(update) = follower.next().await.expect("durable") {
        last = Some(update.order.status);
    }
    assert_eq!(last, Some(OrderStatus::Ready));
    assert!(book.is_durable(entry.latest().seq), "READY waited");
    let stored = store.recover().await.unwrap();
    assert_eq!(stored.finished[0].status, status_number(OrderStatus::Ready));
    assert!(stored.finished[0].finished_at.is_some());
}

/// The restart semantics on a book rebuilt from what another wrote.
#[tokio::test]
async fn a_rebuilt_book_keeps_every_orders_promise() {
    let (_dir, url, store) = sqlite().await;
    let (book, journal, writer) = durable_book(&store, 100);
    let place = |customer: &str, request_id: &str| {
        book.place(latte(customer, request_id), Origin::default())
            .unwrap()
            .entry
    };
    let ready = place("Ready", "");
    let brewing = place("Brewing", "");
    let queued: Vec<_> = ["Q1", "Q2", "Q3"].map(|c| place(c, "")).to_vec();
    let retried = place("Retry", "key-1");
    let cancelled = place("Cancel", "");

    let first = book.claim().order().unwrap();
    assert!(book.start(&first, "Ana".into()));
    assert!(book.ready(&first));
    let second = book.claim().order().unwrap();
    assert!(book.start(&second, "Ben".into()));
    let (_, seq) = book
        .cancel(
            cancelled.id().as_str(),
            &cancelled.claim_token().to_string(),
            "changed my mind",
        )
        .unwrap();
    book.durable(seq).await.expect("durable");
    // The café stops: its writer writes what is left and lets go of the file.
    journal.close();
    writer.await.unwrap();
    drop(book);
    // The writer closed the store it was given; closing this handle too
    // is harmless, and says that the file's lock is let go here, before it
    // is opened again below (a second opener would get "database is
    // locked").
    store.close();

    // The "restart": a new book from the same file.
    let reopened = Store::open(&url).await.unwrap();
    let (book, journal, _writer) = durable_book(&reopened, 100);
    let restored = restore(&book, reopened.recover().await.unwrap());
    assert_eq!(restored.queued, 4);
    assert_eq!(restored.rebrewed, 1);
    assert_eq!(restored.finished, 2);

    // The brewing order is first in line again, with a note.
    let again = book.get(brewing.id().as_str()).unwrap();
    let now = again.snapshot();
    assert_eq!(now.status, OrderStatus::Queued);
    assert_eq!(now.note.as_deref(), Some(REBREW_NOTE));
    assert_eq!(now.barista, None);
    assert_eq!(book.position(&again), Some(1));
    // The queued ones behind it, in their order.
    for (i, entry) in queued.iter().enumerate() {
        let entry = book.get(entry.id().as_str()).unwrap();
        assert_eq!(book.position(&entry), Some(i as u32 + 2));
    }
    // Finished orders as they were.
    assert_eq!(
        book.get(ready.id().as_str()).unwrap().status(),
        OrderStatus::Ready
    );
    assert_eq!(
        book.get(cancelled.id().as_str()).unwrap().status(),
        OrderStatus::Cancelled
    );
    // A retry gets the same order; a new order gets a new ticket, last.
    let retry = book
        .place(latte("Retry", "key-1"), Origin::default())
        .unwrap();
    assert!(!retry.is_new);
    assert_eq!(retry.entry.id(), retried.id());
    let newcomer = book.place(latte("New", ""), Origin::default()).unwrap();
    assert_eq!(newcomer.queue_position, 6);
    assert!(newcomer.entry.ticket() > cancelled.ticket());
    // The claim token still cancels.
    let (order, _) = book
        .cancel(
            queued[2].id().as_str(),
            &queued[2].claim_token().to_string(),
            "gone",
        )
        .unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    // The baristas start from the head.
    assert_eq!(book.claim().order().unwrap().id(), brewing.id());

    // The rebrew's note was written down: a second restart shows it too.
    journal.flushed().await;
    let third = reopened.recover().await.unwrap();
    let row = third
        .open
        .iter()
        .find(|r| r.id == brewing.id().as_str())
        .unwrap();
    assert_eq!(row.status, status_number(OrderStatus::Queued));
    assert_eq!(row.note.as_deref(), Some(REBREW_NOTE));
    assert_eq!(row.barista, None);

    // A free barista takes it at once: the note stays on it while it brews
    // and once it is ready, for GetOrder and for the events a buzzer sees
    // (both are the order as of its changes), so someone can read it.
    let rebrewing = book.get(brewing.id().as_str()).unwrap();
    assert!(book.start(&rebrewing, "Cy".into()));
    let now = rebrewing.snapshot();
    assert_eq!(now.status, OrderStatus::Brewing);
    assert_eq!(now.note.as_deref(), Some(REBREW_NOTE));
    assert!(book.ready(&rebrewing));
    let now = rebrewing.snapshot();
    assert_eq!(now.status, OrderStatus::Ready);
    assert_eq!(now.note.as_deref(), Some(REBREW_NOTE));
}

#[tokio::test]
async fn forgotten_orders_leave_the_store_too() {
    let (_dir, _url, store) = sqlite().await;
    let (book, journal, _writer) = durable_book(&store, 2);
    for i in 0..5 {
        let entry = book
            .place(latte(&format!("c{i}"), ""), Origin::default())
            .unwrap()
            .entry;
        book.fail(&entry, "out of milk");
    }
    journal.flushed().await;
    let stored = store.recover().await.unwrap();
    assert_eq!(
        stored.finished.len(),
        2,
        "the store holds what the book does"
    );
    assert_eq!(stored.next_ticket, 5);
}

/// Places a latte for `customer`.
fn placed(book: &OrderBook, customer: &str) -> Arc<crate::book::OrderEntry> {
    book.place(latte(customer, ""), Origin::default())
        .unwrap()
        .entry
}

/// Takes the next order when there is one (never waits).
fn take(book: &OrderBook) -> Arc<crate::book::OrderEntry> {
    book.claim().order().expect("an order in line")
}

/// The status of the follower's next change; `None` once it has ended.
async fn next_status(follower: &mut crate::book::Follower) -> Option<OrderStatus> {
    tokio::time::timeout(std::time::Duration::from_secs(10), follower.next())
        .await
        .expect("the follower does not hang")
        .expect("the store is writable")
        .map(|update| update.order.status)
}

#[tokio::test]
async fn a_cafe_with_a_journal_closes_keeping_its_line_for_the_restart() {
    let availability = Arc::new(Availability::new());
    let journal = Arc::new(Journal::new());
    // The memory store writes nothing, but the writer marks each batch
    // durable, as a real store's would.
    let writer = tokio::spawn(journal::write(
        Arc::clone(&journal),
        Store::Memory,
        Arc::clone(&availability),
    ));
    let book = Arc::new(OrderBook::with_journal(
        10,
        availability,
        crate::book::FINISHED_ORDERS_KEPT,
        Some(Arc::clone(&journal) as _),
    ));
    let brewing = placed(&book, "Ada");
    let queued = placed(&book, "Bo");
    assert!(book.start(&take(&book), "barista".into()));
    let mut buzzer = book.follow(Arc::clone(&queued), Replay::FromPlacement);
    let mut at_the_bar = book.follow(Arc::clone(&brewing), Replay::FromNow);
    assert_eq!(next_status(&mut buzzer).await, Some(OrderStatus::Queued));
    assert_eq!(
        next_status(&mut at_the_bar).await,
        Some(OrderStatus::Brewing)
    );

    // Closing cancels nothing: the queued order stays queued, its follower
    // ends with the order open, and no barista takes it any more.
    assert_eq!(book.close("closing"), 0);
    assert!(book.left_for_restart(&queued));
    assert!(!book.left_for_restart(&brewing), "still in hand");
    assert_eq!(next_status(&mut buzzer).await, None);
    assert_eq!(queued.status(), OrderStatus::Queued);
    assert!(book.claim().order().is_none());
    // A call cut by the closing is not a customer leaving.
    assert!(!book.abandon(&queued, "the customer left"));
    assert_eq!(queued.status(), OrderStatus::Queued);

    // The grace runs out: the drink in hand stays BREWING, for the restart
    // to brew again, and its follower ends too.
    assert_eq!(book.grace_over("the grace ran out"), 2);
    assert!(book.left_for_restart(&brewing));
    assert_eq!(next_status(&mut at_the_bar).await, None);
    assert_eq!(brewing.status(), OrderStatus::Brewing);

    journal.close();
    writer.await.unwrap();
}

#[test]
fn one_order_wakes_one_idle_barista() {
    let book = open_book(10);
    let orders = Orders::in_memory(Arc::clone(&book));
    let names: Vec<Arc<str>> = (0..50).map(|i| Arc::from(format!("barista-{i}"))).collect();
    let waker = Arc::new(CountingWaker::default());
    // Fifty idle baristas, each waiting for an order.
    let mut idle: Vec<_> = names
        .iter()
        .map(|name| Box::pin(orders.claim(name)))
        .collect();
    for barista in &mut idle {
        assert!(poll_counting(barista, &waker).is_pending());
    }
    place(&book, "Ada");
    assert_eq!(waker.count(), 1, "one order, one barista woken");
    let mut still_idle = Vec::new();
    for mut barista in idle {
        match poll_counting(&mut barista, &waker) {
            Poll::Ready(next) => assert!(next.is_some()),
            Poll::Pending => still_idle.push(barista),
        }
    }
    assert_eq!(still_idle.len(), 49, "the one woken took the order");

    // Closing sends every other one home.
    book.close("closing");
    assert_eq!(waker.count(), 50);
    for mut barista in still_idle {
        assert!(matches!(
            poll_counting(&mut barista, &waker),
            Poll::Ready(None)
        ));
    }
}
