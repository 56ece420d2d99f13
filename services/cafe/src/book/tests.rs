//! The book's unit tests: the line and its places, idempotency, closing,
//! history, retention, and who is woken by what (counted with wakers that
//! count, and on tokio's paused clock for the coalesced places in line).

use std::{
    future::Future,
    pin::pin,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt, task::ArcWake};
use tokio::time::Instant;

use super::*;

fn latte(customer: &str, request_id: &str) -> NewOrder {
    NewOrder::parse(customer, "latte", Ok(None), request_id).unwrap()
}

fn open_book(capacity: usize) -> Arc<OrderBook> {
    Arc::new(OrderBook::new(capacity, Arc::new(Availability::new())))
}

fn place(book: &OrderBook, customer: &str) -> Arc<OrderEntry> {
    book.place(latte(customer, ""), Origin::default())
        .unwrap()
        .entry
}

/// Takes the next order when there is one (never waits).
fn take(book: &OrderBook) -> Arc<OrderEntry> {
    book.next_in_line()
        .now_or_never()
        .flatten()
        .expect("an order in line")
}

/// A waker that counts how often it is woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        this.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `future` once with a counting waker.
fn poll_counting<F: Future + Unpin>(future: &mut F, waker: &Arc<CountingWaker>) -> Poll<F::Output> {
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
    assert!(book.start_brewing(&brewed, "Ana".into()));
    assert!(book.mark_ready(&brewed));
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
    assert!(book.start_brewing(&entry, "Ana".into()));
    assert!(book.mark_ready(&entry));
    assert!(
        !book.mark_failed(&entry, "too late"),
        "a final order stays final"
    );
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
    assert!(book.start_brewing(&orders[0], "Ana".into()));
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
    assert!(book.mark_ready(&orders[0]));
    let update = updates.try_recv().unwrap();
    assert_eq!(update.order.status, OrderStatus::Ready);
    assert!(updates.try_recv().is_err());
}

#[test]
fn one_order_wakes_one_idle_barista() {
    let book = open_book(10);
    let waker = Arc::new(CountingWaker::default());
    // Fifty idle baristas, each waiting for an order.
    let mut idle: Vec<_> = (0..50).map(|_| Box::pin(book.next_in_line())).collect();
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

#[test]
fn a_counter_customer_is_woken_by_its_own_order_only() {
    let book = open_book(1000);
    let ahead: Vec<_> = (0..100).map(|i| place(&book, &format!("c{i}"))).collect();
    let mine = place(&book, "Ada");
    let mut counter = book.follow(Arc::clone(&mine), Replay::FromPlacement);
    let waker = Arc::new(CountingWaker::default());

    // The ticket is there at once, then it waits.
    let Poll::Ready(Ok(Some(ticket))) = poll_counting(&mut pin!(counter.next()), &waker) else {
        panic!("the ticket first");
    };
    assert_eq!(ticket.order.status, OrderStatus::Queued);
    let mut waiting = Box::pin(counter.next());
    assert!(poll_counting(&mut waiting, &waker).is_pending());

    // The line moves a lot ahead of it: served, cancelled from the middle,
    // brewed, new orders behind it.
    for entry in ahead.iter().skip(1).step_by(4) {
        assert!(book.abandon(entry, "left"));
    }
    for _ in 0..50 {
        let taken = take(&book);
        assert!(book.start_brewing(&taken, "Ana".into()));
        assert!(book.mark_ready(&taken));
    }
    for i in 0..50 {
        place(&book, &format!("later {i}"));
    }
    assert_eq!(book.position(&mine), Some(26));
    assert_eq!(waker.count(), 0, "woken by other orders");

    // Its own order changes: one wake-up, and the news.
    for _ in 0..25 {
        take(&book);
    }
    assert_eq!(take(&book).id(), mine.id());
    assert_eq!(waker.count(), 0, "taking it from the line is no news yet");
    assert!(book.start_brewing(&mine, "Ben".into()));
    assert_eq!(waker.count(), 1);
    let Poll::Ready(Ok(Some(brewing))) = poll_counting(&mut waiting, &waker) else {
        panic!("BREWING");
    };
    assert_eq!(brewing.order.status, OrderStatus::Brewing);
}

#[test]
fn a_follower_never_misses_a_change_however_late_it_looks() {
    let book = open_book(10);
    let entry = place(&book, "Ada");
    let mut late = book
        .follow(Arc::clone(&entry), Replay::FromPlacement)
        .with_positions();
    take(&book);
    assert!(book.start_brewing(&entry, "Ana".into()));
    assert!(book.mark_ready(&entry));

    let seen: Vec<_> = std::iter::from_fn(|| late.next().now_or_never().and_then(writable))
        .map(|u| (u.order.status, u.queue_position))
        .collect();
    assert_eq!(
        seen,
        [
            (OrderStatus::Queued, 1),
            (OrderStatus::Brewing, 0),
            (OrderStatus::Ready, 0)
        ]
    );

    // Watching from now: the order as it is, then the end.
    let mut now = book.follow(entry, Replay::FromNow);
    let first = now.next().now_or_never().and_then(writable).unwrap();
    assert_eq!(first.order.status, OrderStatus::Ready);
    assert!(now.next().now_or_never().and_then(writable).is_none());
}

#[test]
fn in_a_short_line_a_buzzer_hears_every_move() {
    let book = open_book(100);
    let orders: Vec<_> = (0..5).map(|i| place(&book, &format!("c{i}"))).collect();
    let last = orders.last().unwrap();
    let mut buzzer = book
        .follow(Arc::clone(last), Replay::FromPlacement)
        .with_positions();
    let mut positions = vec![];
    let mut next = || {
        buzzer
            .next()
            .now_or_never()
            .and_then(writable)
            .map(|u| u.queue_position)
    };
    positions.extend(next());
    for _ in 0..4 {
        take(&book);
        positions.extend(next());
    }
    assert_eq!(positions, [5, 4, 3, 2, 1]);
}

/// Places `n` orders and follows the last `followed` of them with places
/// in line, each in its own task that records `(when, place)`.
fn long_line(
    book: &Arc<OrderBook>,
    n: usize,
    followed: usize,
) -> Vec<tokio::task::JoinHandle<Vec<(Instant, u32)>>> {
    let orders: Vec<_> = (0..n).map(|i| place(book, &format!("c{i}"))).collect();
    orders[n - followed..]
        .iter()
        .map(|entry| {
            let mut buzzer = book
                .follow(Arc::clone(entry), Replay::FromPlacement)
                .with_positions();
            tokio::spawn(async move {
                let mut seen = vec![];
                while let Some(update) = writable(buzzer.next().await) {
                    if update.order.status != OrderStatus::Queued {
                        break;
                    }
                    seen.push((Instant::now(), update.queue_position));
                }
                seen
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn in_a_long_line_moves_are_told_a_few_times_a_second_not_once_per_order() {
    let book = open_book(10_000);
    let buzzers = long_line(&book, 2_000, 100);
    let start = Instant::now();
    // Let every buzzer show its ticket.
    tokio::time::sleep(Duration::from_millis(1)).await;

    // Ten bursts of 100 orders leaving, 100 ms apart: 1,000 moves in one
    // second, far more than anyone needs to see.
    for _ in 0..10 {
        for _ in 0..100 {
            take(&book);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then close: every buzzer's order is cancelled and its task ends.
    tokio::time::sleep(POSITION_INTERVAL * 2).await;
    book.close("closing");

    for (i, buzzer) in buzzers.into_iter().enumerate() {
        let seen = buzzer.await.unwrap();
        let expected_last = 2_000 - 100 + i as u32 + 1 - 1_000;
        assert_eq!(
            seen.last().map(|&(_, p)| p),
            Some(expected_last),
            "the last place told is the true one: {seen:?}"
        );
        // The ticket, then at most one update per interval.
        let updates = &seen[1..];
        let window = seen.last().unwrap().0 - start;
        assert!(
            updates.len() as u32
                <= window.as_millis() as u32 / POSITION_INTERVAL.as_millis() as u32 + 1,
            "{} updates in {window:?}: {seen:?}",
            updates.len()
        );
        assert!(
            updates
                .windows(2)
                .all(|w| w[1].0 - w[0].0 >= POSITION_INTERVAL),
            "updates closer than {POSITION_INTERVAL:?}: {seen:?}"
        );
        assert!(
            seen.windows(2).all(|w| w[0].1 > w[1].1),
            "places only go up the line: {seen:?}"
        );
    }
}

/// A long line moving fast (1,000 orders a second, 3,000 buzzers): the
/// line as a whole is told at most its budget of places a second, each
/// buzzer at most once per interval, and each still sees its place go down
/// while it waits, then BREWING and READY.
#[tokio::test(start_paused = true)]
async fn a_long_line_is_told_within_its_budget_and_every_buzzer_sees_its_place_go_down() {
    const ORDERS: usize = 3_000;
    let book = open_book(10_000);
    let buzzers: Vec<_> = (0..ORDERS)
        .map(|i| {
            let entry = place(&book, &format!("c{i}"));
            let mut buzzer = book.follow(entry, Replay::FromPlacement).with_positions();
            tokio::spawn(async move {
                let mut seen = vec![];
                while let Some(update) = writable(buzzer.next().await) {
                    seen.push((Instant::now(), update.order.status, update.queue_position));
                }
                seen
            })
        })
        .collect();
    // Let every buzzer show its ticket.
    tokio::time::sleep(Duration::from_millis(1)).await;

    // A barista serving one order a millisecond (the brew is instant).
    while book.queue_len() > 0 {
        let entry = take(&book);
        assert!(book.start_brewing(&entry, "Ana".into()));
        assert!(book.mark_ready(&entry));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // The places told by the ticker: the line was long, and it was not a
    // buzzer's ticket.
    let mut told = vec![];
    for (i, buzzer) in buzzers.into_iter().enumerate() {
        let seen = buzzer.await.unwrap();
        let statuses: Vec<_> = seen.iter().map(|&(_, status, _)| status).collect();
        let queued = statuses.len() - 2;
        assert!(
            statuses[..queued].iter().all(|&s| s == OrderStatus::Queued)
                && statuses[queued..] == [OrderStatus::Brewing, OrderStatus::Ready],
            "the places in line, then BREWING and READY: {seen:?}"
        );
        let places: Vec<(Instant, u32)> =
            seen[..queued].iter().map(|&(at, _, p)| (at, p)).collect();
        assert_eq!(places[0].1, i as u32 + 1, "the ticket's place");
        assert!(
            places.windows(2).all(|w| w[0].1 > w[1].1),
            "places only go down: {places:?}"
        );
        let long: Vec<(Instant, u32)> = places[1..]
            .iter()
            .copied()
            .filter(|&(_, place)| place as usize > SHORT_LINE)
            .collect();
        assert!(
            long.windows(2)
                .all(|w| w[1].0 - w[0].0 >= POSITION_INTERVAL),
            "a buzzer in a long line hears its place at most once per {POSITION_INTERVAL:?}: {long:?}"
        );
        // Waiting more than 2 s, far longer than one round of the groups
        // (16 groups of at most 188, each followed by a rest of 188 ÷ the
        // budget: 1.5 s), it heard the line move before it got near the front.
        if i >= 2_000 {
            assert!(!long.is_empty(), "buzzer {i} heard nothing: {places:?}");
        }
        told.extend(long.into_iter().map(|(at, _)| at));
    }

    // In any second, the budget, plus one group told before its rest.
    told.sort();
    let slack = ORDERS / line_moves::GROUPS + 1;
    let most = told
        .iter()
        .enumerate()
        .map(|(first, &at)| told[first..].partition_point(|&t| t < at + Duration::from_secs(1)))
        .max()
        .unwrap_or(0);
    assert!(
        most <= POSITIONS_PER_SECOND as usize + slack,
        "{most} places told in one second (of {} in all)",
        told.len()
    );
    // Without the budget each of the 3,000 would hear its place about four
    // times a second while waiting (1.5 s on average): about 18,000.
    assert!(told.len() < 8_000, "{} places told", told.len());
}

/// The status of the follower's next change; `None` once it has ended.
async fn next_status(follower: &mut Follower) -> Option<OrderStatus> {
    tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .expect("the follower does not hang")
        .expect("the store is writable")
        .map(|update| update.order.status)
}

/// A follower's next change, on a store that cannot fail.
fn writable(next: Result<Option<Update>, CafeError>) -> Option<Update> {
    next.expect("the store is writable")
}

#[tokio::test]
async fn a_cafe_with_a_journal_closes_keeping_its_line_for_the_restart() {
    let availability = Arc::new(Availability::new());
    let journal = Arc::new(Journal::new());
    // The memory store writes nothing, but the writer marks each batch
    // durable, as a real store's would.
    let writer = tokio::spawn(crate::store::journal::write(
        Arc::clone(&journal),
        crate::store::Store::Memory,
        Arc::clone(&availability),
    ));
    let book = Arc::new(OrderBook::with_journal(
        10,
        availability,
        FINISHED_ORDERS_KEPT,
        Some(Arc::clone(&journal)),
    ));
    let brewing = place(&book, "Ada");
    let queued = place(&book, "Bo");
    assert!(book.start_brewing(&take(&book), "barista".into()));
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
    assert!(book.next_in_line().now_or_never().flatten().is_none());
    // A call cut by the closing is not a customer leaving.
    assert!(!book.abandon(&queued, "the customer left"));
    assert_eq!(queued.status(), OrderStatus::Queued);

    // The grace runs out: the drink in hand stays BREWING, for the restart
    // to brew again, and its follower ends too.
    assert_eq!(book.keep_unfinished(), 2);
    assert!(book.left_for_restart(&brewing));
    assert_eq!(next_status(&mut at_the_bar).await, None);
    assert_eq!(brewing.status(), OrderStatus::Brewing);

    journal.close();
    writer.await.unwrap();
}

#[test]
fn the_memory_store_cancels_its_line_when_it_closes() {
    let book = open_book(10);
    let queued = place(&book, "Bo");
    assert_eq!(book.close("closing"), 1);
    assert_eq!(queued.status(), OrderStatus::Cancelled);
    assert!(!book.left_for_restart(&queued));
}
