//! Customers who go away leave nothing behind: within a second of a
//! customer leaving, every task, stream and follower the café held for
//! them is gone, as its own metrics say (scraped over HTTP, as an operator
//! would see a leak).
//!
//! What is read: `tokio_alive_tasks` (back to what it was before the
//! customer came: every call is a task on the server, every buzzer and
//! board stream one more), `grpc_server_calls_in_flight` (the call's
//! HTTP/2 stream is closed), and the book's own counts: followers of an
//! order, buzzers, board watchers (each holds a channel receiver and the
//! buffers behind it, which is the memory a leak would keep).
//!
//! The café runs in the test's runtime, so the live tasks include the
//! test's client; the baseline is taken after it has connected, and the
//! tests only compare with it.

use std::time::Duration;

use cafe_domain::proto::v1::{
    GetMenuRequest, OrderStatus, WatchBoardRequest, cafe_client::CafeClient,
};
use cafe_testkit::{
    LIMIT, TestCafe, config_at_scale, metrics::Scrape, metrics::scrape_until, order, spawn_cafe,
    status_of, with_metrics,
};
use tonic::transport::Endpoint;

/// How soon everything must be gone (issue 10: "within a second").
const WITHIN: Duration = Duration::from_secs(1);

/// A café with one barista and real brew times (a latte takes 40 s, far
/// longer than any test here), serving metrics.
async fn slow_cafe() -> TestCafe {
    let mut config = with_metrics(config_at_scale(1.0));
    config.baristas = 1;
    spawn_cafe(config).await
}

/// The live tasks once the café and its client are up and have answered a
/// call (so the connection's tasks exist).
async fn baseline(cafe: &mut TestCafe) -> f64 {
    cafe.client.get_menu(GetMenuRequest {}).await.unwrap();
    cafe.scrape().await.get("tokio_alive_tasks", &[])
}

fn in_flight(scrape: &Scrape, method: &str) -> f64 {
    scrape.get("grpc_server_calls_in_flight", &[("grpc_method", method)])
}

/// Followers of orders that are not baristas: each brewing order is also
/// followed by its barista, who watches it for a cancel.
fn customers_following(scrape: &Scrape) -> f64 {
    scrape.get("cafe_order_followers", &[]) - scrape.get("cafe_orders", &[("status", "brewing")])
}

/// Waits (within [`WITHIN`]) until the café holds nothing for a customer
/// of `method` any more: no call in flight, no customer following an
/// order, no buzzer or board stream, and no more live tasks than
/// `baseline`.
async fn nothing_left(cafe: &TestCafe, method: &str, baseline: f64) -> Scrape {
    scrape_until(
        cafe.metrics_addr.unwrap(),
        WITHIN,
        &format!("nothing left behind by {method} (tasks back to {baseline})"),
        |scrape| {
            in_flight(scrape, method) == 0.0
                && customers_following(scrape) == 0.0
                && scrape.get("cafe_buzzers_open", &[]) == 0.0
                && scrape.get("cafe_board_watchers", &[]) == 0.0
                && scrape.get("tokio_alive_tasks", &[]) <= baseline
        },
    )
    .await
}

#[tokio::test]
async fn a_buzzer_dropped_after_its_ticket_leaves_nothing_behind() {
    let mut cafe = slow_cafe().await;
    let baseline = baseline(&mut cafe).await;

    let mut buzzer = cafe.buzzer("Ana", "latte").await;
    let ticket = buzzer.message().await.unwrap().expect("the ticket");
    assert_eq!(status_of(&ticket), OrderStatus::Queued);
    let open = cafe.scrape().await;
    assert_eq!(in_flight(&open, "OrderWithBuzzer"), 1.0);
    assert_eq!(open.get("cafe_buzzers_open", &[]), 1.0);
    assert!(
        open.get("tokio_alive_tasks", &[]) > baseline,
        "a buzzer is a task"
    );

    drop(buzzer);
    let after = nothing_left(&cafe, "OrderWithBuzzer", baseline).await;
    // The order itself carries on: a buzzer customer may come back for it.
    assert_eq!(after.get("cafe_orders", &[("status", "brewing")]), 1.0);
    assert_eq!(
        after.get(
            "grpc_server_handling_seconds_count",
            &[
                ("grpc_method", "OrderWithBuzzer"),
                ("grpc_code", "CANCELLED")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_counter_call_cancelled_mid_brew_leaves_nothing_behind() {
    let mut cafe = slow_cafe().await;
    let baseline = baseline(&mut cafe).await;

    let mut client = cafe.client.clone();
    let waiting = tokio::spawn(async move { client.order_coffee(order("Ben", "latte")).await });
    let brewing = scrape_until(
        cafe.metrics_addr.unwrap(),
        LIMIT,
        "the counter order brewing",
        |scrape| scrape.get("cafe_orders", &[("status", "brewing")]) == 1.0,
    )
    .await;
    assert_eq!(in_flight(&brewing, "OrderCoffee"), 1.0);
    assert_eq!(customers_following(&brewing), 1.0, "the counter customer");

    // The customer walks away: the call is dropped, its stream reset.
    waiting.abort();
    let after = nothing_left(&cafe, "OrderCoffee", baseline).await;
    // The order went with them, and the barista is free.
    assert_eq!(after.get("cafe_orders", &[("status", "brewing")]), 0.0);
    assert_eq!(
        after.get("cafe_orders_ended_total", &[("status", "cancelled")]),
        1.0
    );
}

#[tokio::test]
async fn a_board_watcher_that_never_reads_holds_a_bounded_buffer_and_leaves_nothing_behind() {
    let mut config = with_metrics(config_at_scale(1.0));
    config.baristas = 1;
    config.queue_capacity = 2_000;
    let mut cafe = spawn_cafe(config).await;
    // The watcher on a connection of its own with a small window (16 KiB),
    // so that not reading pushes back on the café quickly: the HTTP/2
    // window fills, then the stream's channel, then its task waits.
    let channel = Endpoint::from_shared(cafe.url())
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .connect()
        .await
        .unwrap();
    let mut watcher = CafeClient::new(channel);
    watcher.get_menu(GetMenuRequest {}).await.unwrap();
    let baseline = baseline(&mut cafe).await;

    let board = watcher
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    // News for the board (each order placed is an update) far beyond what
    // the watcher may buffer: some 70 KB of updates.
    for n in 0..700 {
        let buzzer = cafe
            .client
            .order_with_buzzer(order(&format!("customer {n}"), "latte"))
            .await
            .unwrap();
        drop(buzzer);
    }
    let stuck = scrape_until(
        cafe.metrics_addr.unwrap(),
        LIMIT,
        "the dropped buzzers gone, the board watcher still there",
        |scrape| {
            scrape.get("cafe_buzzers_open", &[]) == 0.0
                && in_flight(scrape, "OrderWithBuzzer") == 0.0
        },
    )
    .await;
    // Still open (the customer has not hung up): one stream, one task,
    // however far behind it is.
    assert_eq!(stuck.get("cafe_board_watchers", &[]), 1.0);
    assert_eq!(in_flight(&stuck, "WatchBoard"), 1.0);
    assert_eq!(stuck.get("cafe_orders_placed_total", &[]), 700.0);
    // A handful of tasks (the watcher's stream and its producer, a scrape
    // finishing), not one per order it is behind on.
    let tasks = stuck.get("tokio_alive_tasks", &[]);
    assert!(tasks <= baseline + 3.0, "{tasks} tasks, {baseline} before");

    drop(board);
    nothing_left(&cafe, "WatchBoard", baseline).await;
}
