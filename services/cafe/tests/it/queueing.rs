//! The queueing logic on tokio's paused clock: no gRPC, no real time.
//!
//! With time paused, `sleep` completes the instant every task is idle, by
//! jumping the clock forward. So these tests check *exactly* when each order
//! is ready — the staircase of one barista and the fan of many — in
//! microseconds of real time, immune to a loaded machine.

use std::{sync::Arc, time::Duration};

use cafe_domain::brewing::BrewMode;
use cafe_domain::{
    menu::{self, Size, TimeScale},
    order::{NewOrder, OrderStatus},
};
use cafe_server::{
    availability::Availability,
    baristas::{Brewers, TIMER_SLACK, start_shift},
    book::{OrderBook, OrderEntry, Origin},
    store::Orders,
};
use grpc_serving::Critical;
use tokio::time::Instant;

/// Places `customers` latte orders at once with `baristas` baristas, and
/// returns when each was ready, measured from the start.
async fn ready_times(baristas: u32, customers: usize) -> Vec<Duration> {
    ready_times_at(TimeScale::REAL, baristas, customers).await
}

/// The same, brewing at `time_scale`.
async fn ready_times_at(time_scale: TimeScale, baristas: u32, customers: usize) -> Vec<Duration> {
    let book = Arc::new(OrderBook::new(customers, Arc::new(Availability::new())));
    let brewers = Brewers::Embedded {
        time_scale,
        brew_mode: BrewMode::Async,
    };
    let _shift = start_shift(
        &Orders::in_memory(Arc::clone(&book)),
        &brewers,
        baristas,
        &Critical::new(),
    );
    let start = Instant::now();
    let orders: Vec<_> = (0..customers)
        .map(|i| place(&book, &format!("customer {i}")))
        .collect();
    let mut times = Vec::new();
    for entry in orders {
        let order = entry.finished().await;
        assert_eq!(order.status, OrderStatus::Ready);
        times.push(start.elapsed());
    }
    times
}

fn place(book: &OrderBook, customer: &str) -> Arc<OrderEntry> {
    let new = NewOrder::parse(customer, "latte", Ok(None), "").unwrap();
    book.place(new, Origin::default()).unwrap().entry
}

const LATTE: Duration = Duration::from_secs(40);

/// A time scale that makes a medium latte about 50.5 ms: not a whole number
/// of the timer's milliseconds, so each wake-up comes up to 1 ms late.
fn half_a_millisecond_off() -> (TimeScale, Duration) {
    let scale = TimeScale::new(50.5 / 40_000.0).unwrap();
    let brew = menu::find("latte")
        .unwrap()
        .brew_time_for(Size::Medium, scale);
    (scale, brew)
}

#[tokio::test(start_paused = true)]
async fn a_barista_with_a_line_brews_back_to_back_on_the_clock() {
    // The timer wakes the barista on whole milliseconds, so each 50.5 ms
    // brew is heard of up to 1 ms late. Twenty drinks started from each
    // late wake-up would take 20 × 51 ms; started when the last one was
    // due, they take 20 × 50.5 ms, plus the last wake-up's rounding.
    let (scale, brew) = half_a_millisecond_off();
    let times = ready_times_at(scale, 1, 20).await;
    for (k, &ready) in times.iter().enumerate() {
        assert!(
            ready >= brew * (k as u32 + 1),
            "drink {k} faster than its brew: {times:?}"
        );
    }
    assert!(
        times[19] <= brew * 20 + Duration::from_millis(1),
        "the barista's day drifted: {times:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_order_that_comes_after_the_barista_is_free_gets_its_whole_brew() {
    let (scale, brew) = half_a_millisecond_off();
    let book = Arc::new(OrderBook::new(10, Arc::new(Availability::new())));
    let brewers = Brewers::Embedded {
        time_scale: scale,
        brew_mode: BrewMode::Async,
    };
    let _shift = start_shift(
        &Orders::in_memory(Arc::clone(&book)),
        &brewers,
        1,
        &Critical::new(),
    );
    place(&book, "first").finished().await;
    // The barista has been free for a moment (less than TIMER_SLACK) when
    // the next order comes: it is brewed from then, not from when the
    // barista was free.
    tokio::time::sleep(TIMER_SLACK / 2).await;
    let placed = Instant::now();
    let order = place(&book, "second").finished().await;
    assert_eq!(order.status, OrderStatus::Ready);
    assert!(
        placed.elapsed() >= brew,
        "{:?} < {brew:?}",
        placed.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn one_barista_makes_a_staircase() {
    // First come, first served: each customer waits for everyone before them.
    assert_eq!(
        ready_times(1, 4).await,
        [LATTE, LATTE * 2, LATTE * 3, LATTE * 4]
    );
}

#[tokio::test(start_paused = true)]
async fn enough_baristas_make_a_fan() {
    // Everyone is served at once: the wait is the longest brew, not the sum.
    assert_eq!(ready_times(4, 4).await, [LATTE; 4]);
}

#[tokio::test(start_paused = true)]
async fn two_baristas_serve_in_pairs() {
    assert_eq!(
        ready_times(2, 5).await,
        [LATTE, LATTE, LATTE * 2, LATTE * 2, LATTE * 3]
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_baristas_make_one_wide_fan() {
    // Tasks are cheap: a café may have a hundred thousand baristas, and
    // with more baristas than customers every order is ready one brew
    // after it was placed.
    let times = ready_times(100_000, 10_000).await;
    assert!(
        times.iter().all(|&t| t == LATTE),
        "{:?}",
        times.iter().max()
    );
}
