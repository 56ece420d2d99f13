//! The café service end to end, over real gRPC.

mod common;

use std::time::Duration;

use common::{fast_config, order, spawn_cafe};

#[tokio::test]
async fn a_counter_order_returns_ready() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let response = cafe
        .client
        .order_coffee(order("Ada", "latte"))
        .await
        .unwrap();
    let order = response.into_inner().order.unwrap();
    assert_eq!(order.status, cafe::proto::v1::OrderStatus::Ready as i32);
    cafe.shutdown_within(Duration::from_secs(5)).await;
}
