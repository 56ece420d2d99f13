//! The café's own limits, each hit on purpose, after which the café goes on
//! serving: how long a customer may wait at the counter, and how large a
//! request may be. (The transport's limits, the same in every server, are
//! tested in `grpc_serving::transport`; the queue's capacity in
//! `orders`.)

use std::time::Duration;

use cafe_domain::proto::v1::{GetMenuRequest, GetStatsRequest};
use cafe_server::Config;
use cafe_testkit::{LIMIT, config_at_scale, order, spawn_cafe};
use tonic::Code;

#[tokio::test]
async fn a_counter_call_ends_at_the_longest_wait_and_its_order_is_cancelled() {
    let max_counter_wait = Duration::from_millis(300);
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        max_counter_wait,
        ..config_at_scale(0.5) // a latte takes 20 s
    })
    .await;

    let started = tokio::time::Instant::now();
    let refused = tokio::time::timeout(LIMIT, cafe.client.order_coffee(order("Ada", "latte")))
        .await
        .expect("the counter call ended in time")
        .unwrap_err();
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    assert!(
        refused.message().contains("buzzer"),
        "{}",
        refused.message()
    );
    assert!(started.elapsed() >= max_counter_wait);

    // The order was cancelled, so the barista is free again.
    let emptied = async {
        loop {
            let stats = cafe.client.get_stats(GetStatsRequest {}).await.unwrap();
            let stats = stats.into_inner();
            if stats.orders_queued + stats.orders_brewing == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, emptied)
        .await
        .expect("the order left the café");
    cafe.client.get_menu(GetMenuRequest {}).await.unwrap();
}

#[tokio::test]
async fn a_request_over_the_size_cap_is_refused_and_the_next_one_served() {
    let mut cafe = spawn_cafe(config_at_scale(0.005)).await;
    let too_large = order(&"A".repeat(100 * 1024), "espresso");
    let refused = cafe.client.order_coffee(too_large).await.unwrap_err();
    // tonic's code for a message over the limit.
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");

    let served = cafe.client.order_coffee(order("Bo", "espresso")).await;
    assert!(served.is_ok(), "{served:?}");
}
