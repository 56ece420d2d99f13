//! The board (`WatchBoard`): the open orders first, then every change.

use cafe_domain::proto::v1::{OrderStatus, WatchBoardRequest};
use cafe_server::Config;
use cafe_testkit::{drain, fast_config, order, spawn_cafe, status_of};
use futures::StreamExt;

#[tokio::test]
async fn the_board_shows_open_orders_then_every_change() {
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        ..fast_config()
    })
    .await;
    let before = cafe.buzzer("Ada", "espresso").await;
    let mut board = cafe
        .client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    let after = cafe
        .client
        .order_coffee(order("Bo", "espresso"))
        .await
        .unwrap()
        .into_inner();
    drain(before).await;

    let bo_id = after.order.unwrap().id;
    let mut bo_statuses = Vec::new();
    while bo_statuses.last() != Some(&OrderStatus::Ready) {
        let event = board.next().await.unwrap().unwrap();
        assert!(
            event.claim_token.is_empty(),
            "the board never shows claim tokens"
        );
        if event.order.as_ref().unwrap().id == bo_id {
            bo_statuses.push(status_of(&event));
        }
    }
    assert_eq!(
        bo_statuses,
        [
            OrderStatus::Queued,
            OrderStatus::Brewing,
            OrderStatus::Ready
        ]
    );
}
