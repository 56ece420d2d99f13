//! Following an order: a counter customer is woken by its own order only,
//! a follower never misses a change, and a buzzer hears the line move at
//! its rate (counted with wakers that count, and on tokio's paused clock
//! for the coalesced places in a long line).

use std::{pin::pin, sync::Arc, task::Poll, time::Duration};

use futures::FutureExt;
use tokio::time::Instant;

use super::super::{
    OrderBook, POSITION_INTERVAL, POSITIONS_PER_SECOND, SHORT_LINE, line_moves,
    tests::{CountingWaker, open_book, place, poll_counting, take},
};
use super::*;
use crate::{book::Update, error::CafeError};

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
        assert!(book.start(&taken, "Ana".into()));
        assert!(book.ready(&taken));
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
    assert!(book.start(&mine, "Ben".into()));
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
    let mut late = buzzer(&book, &entry);
    take(&book);
    assert!(book.start(&entry, "Ana".into()));
    assert!(book.ready(&entry));

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
    let mut buzzer = buzzer(&book, last);
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
            let mut buzzer = buzzer(book, entry);
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
            let mut buzzer = buzzer(&book, &entry);
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
        assert!(book.start(&entry, "Ana".into()));
        assert!(book.ready(&entry));
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

/// A buzzer's follower of `entry`: from its placement, with its place in line.
fn buzzer(book: &Arc<OrderBook>, entry: &Arc<OrderEntry>) -> Follower {
    book.follow(Arc::clone(entry), Replay::FromPlacement)
        .with_positions()
}

/// A follower's next change, on a store that cannot fail.
fn writable(next: Result<Option<Update>, CafeError>) -> Option<Update> {
    next.expect("the store is writable")
}

/// A move of the line tells (locks and bumps) every group with a buzzer
/// subscribed. With 100,000 baristas, 100,000 buzzers' orders are brewing,
/// not in line: subscribed, they made every move cost all the groups.
#[test]
fn a_buzzer_is_subscribed_to_the_line_only_while_its_order_is_in_it() {
    let book = open_book(100);
    let mine = place(&book, "Ada");
    let mut buzzer = buzzer(&book, &mine);
    let waker = Arc::new(CountingWaker::default());
    let Poll::Ready(Ok(Some(_))) = poll_counting(&mut pin!(buzzer.next()), &waker) else {
        panic!("the ticket first");
    };
    let mut waiting = Box::pin(buzzer.next());
    assert!(poll_counting(&mut waiting, &waker).is_pending());
    assert_eq!(
        book.line_moves.subscribed(),
        1,
        "in line: told of its moves"
    );

    assert_eq!(take(&book).id(), mine.id());
    assert!(book.start(&mine, "Ana".into()));
    let Poll::Ready(Ok(Some(brewing))) = poll_counting(&mut waiting, &waker) else {
        panic!("BREWING");
    };
    assert_eq!(brewing.order.status, OrderStatus::Brewing);
    drop(waiting);
    let mut waiting = Box::pin(buzzer.next());
    assert!(poll_counting(&mut waiting, &waker).is_pending());
    assert_eq!(
        book.line_moves.subscribed(),
        0,
        "brewing: not told of the line"
    );
    assert_eq!(book.census().buzzers, 1, "and still a buzzer");

    let woken = waker.count();
    for i in 0..10 {
        place(&book, &format!("later {i}"));
        take(&book);
    }
    assert_eq!(waker.count(), woken, "woken by the line while brewing");
    drop(waiting);
    drop(buzzer);
    assert_eq!(book.census().buzzers, 0);
}
