//! The queueing logic on tokio's paused clock: no gRPC, no real time.
//!
//! With time paused, `sleep` completes the instant every task is idle, by
//! jumping the clock forward. So these tests check *exactly* when each order
//! is ready — the staircase of one barista and the fan of many — in
//! microseconds of real time, immune to a loaded machine.

use std::{sync::Arc, time::Duration};

use cafe_core::brewing::BrewMode;
use cafe_core::{
    menu::TimeScale,
    order::{NewOrder, OrderStatus},
};
use cafe_server::{
    availability::Availability,
    baristas::{Brewers, start_shift},
    book::{OrderBook, Origin},
};
use tokio::time::Instant;

/// Places `customers` latte orders at once with `baristas` baristas, and
/// returns when each was ready, measured from the start.
async fn ready_times(baristas: u32, customers: usize) -> Vec<Duration> {
    let book = Arc::new(OrderBook::new(customers, Arc::new(Availability::new())));
    let brewers = Brewers::Embedded {
        time_scale: TimeScale::REAL,
        brew_mode: BrewMode::Async,
    };
    let _shift = start_shift(&book, &brewers, baristas);
    let start = Instant::now();
    let orders: Vec<_> = (0..customers)
        .map(|i| {
            let new = NewOrder::parse(&format!("customer {i}"), "latte", Ok(None), "").unwrap();
            book.place(new, Origin::default()).unwrap().entry
        })
        .collect();
    let mut times = Vec::new();
    for entry in orders {
        let order = entry.finished().await;
        assert_eq!(order.status, OrderStatus::Ready);
        times.push(start.elapsed());
    }
    times
}

const LATTE: Duration = Duration::from_secs(40);

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
