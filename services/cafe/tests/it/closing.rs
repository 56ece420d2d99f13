//! Closing, seen by a few customers: health turns NOT_SERVING while the café
//! drains, the drinks brewing are finished and the line is cancelled, every
//! stream ends in time, and a brew longer than the grace is given up on.
//! (The same under 2,000 orders in flight is in `tests/shutdown/`.)

use std::time::Duration;

use cafe_domain::proto::v1::{OrderStatus, WatchBoardRequest};
use cafe_server::Config;
use cafe_testkit::{config_at_scale, connect, drain, order, spawn_cafe, statuses, until_brewing};
use futures::StreamExt;
use grpc_serving::ServerFlags;
use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn health_is_serving_then_not_serving_while_closing() {
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.02) // a mocha takes 1.2 s
    })
    .await;
    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(cafe.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in ["", "cafe.v1.Cafe", grpc_serving::LIVENESS] {
        let status = health
            .check(check(service))
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    // A drink in the making keeps the café draining for a while.
    let mut brewing = cafe.buzzer("Ada", "mocha").await;
    until_brewing(&mut brewing).await;
    cafe.begin_shutdown();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = health
            .check(check("cafe.v1.Cafe"))
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::task::yield_now().await;
    }
    // Not ready, but alive: a liveness probe must not kill a café that
    // drains.
    let alive = health
        .check(check(grpc_serving::LIVENESS))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        alive,
        ServingStatus::Serving as i32,
        "liveness while closing"
    );
    // While closing, new orders are refused.
    let refused = cafe
        .client
        .order_coffee(order("Bo", "espresso"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(
        refused.message().contains("closing"),
        "{}",
        refused.message()
    );
    // And the drink in the making is still finished.
    assert_eq!(
        statuses(&drain(brewing).await).last(),
        Some(&OrderStatus::Ready)
    );
}

#[tokio::test]
async fn shutdown_finishes_brewing_cancels_the_line_and_ends_every_stream_in_time() {
    let scale = 0.02; // a latte takes 800 ms
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        time_scale: cafe_domain::menu::TimeScale::new(scale).unwrap(),
        server: ServerFlags {
            shutdown_grace: Duration::from_secs(5),
            ..ServerFlags::default()
        },
        ..Config::default()
    })
    .await;
    let mut brewing = cafe.buzzer("Ada", "latte").await;
    let queued = cafe.buzzer("Bo", "latte").await;
    let mut counter_client = connect(cafe.addr).await;
    let counter =
        tokio::spawn(async move { counter_client.order_coffee(order("Cy", "latte")).await });
    let board = cafe
        .client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    until_brewing(&mut brewing).await;

    let took = cafe.shutdown_within(Duration::from_secs(8)).await;

    // The drink in the making was finished; the ones in line were cancelled
    // and their customers told; every stream ended cleanly.
    assert_eq!(statuses(&drain(brewing).await), [OrderStatus::Ready]);
    let queued = drain(queued).await;
    assert_eq!(statuses(&queued).last(), Some(&OrderStatus::Cancelled));
    assert!(
        queued
            .last()
            .unwrap()
            .order
            .as_ref()
            .unwrap()
            .note
            .contains("closed")
    );
    let counter = counter.await.unwrap().unwrap_err();
    assert_eq!(counter.code(), Code::Unavailable, "{counter:?}");
    drain(board).await;
    // It waited for the latte, not for the whole grace.
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
}

#[tokio::test]
async fn shutdown_gives_up_on_a_brew_longer_than_the_grace() {
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        time_scale: cafe_domain::menu::TimeScale::REAL, // a tea takes 3 minutes
        server: ServerFlags {
            shutdown_grace: Duration::from_millis(500),
            ..ServerFlags::default()
        },
        ..Config::default()
    })
    .await;
    let mut buzzer = cafe.buzzer("Ada", "tea").await;
    until_brewing(&mut buzzer).await;

    let took = cafe.shutdown_within(Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(450),
        "it waited out the grace: {took:?}"
    );
    // The open buzzer is not left hanging forever: the connection is closed.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = buzzer.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the buzzer stream never ended");
}
