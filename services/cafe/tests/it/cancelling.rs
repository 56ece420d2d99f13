//! Cancelling: `CancelOrder` needs the claim token and an order that is
//! still queued or brewing, and an order cancelled mid-brew, or a counter
//! customer who leaves, frees the barista for the next order at once.

use std::time::Duration;

use cafe_domain::proto::v1::{CancelOrderRequest, OrderStatus};
use cafe_server::Config;
use cafe_testkit::{config_at_scale, drain, order, spawn_cafe, statuses, until_brewing};
use futures::StreamExt;
use tokio::time::Instant;
use tonic::Code;

#[tokio::test]
async fn cancel_order_needs_the_claim_token_and_a_queued_or_brewing_order() {
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.02)
    })
    .await;
    // Keep the barista busy so the second order waits in line.
    let first = cafe.buzzer("Ada", "mocha").await;
    let mut second = cafe.buzzer("Bo", "latte").await;
    let ticket = second.next().await.unwrap().unwrap();
    let id = ticket.order.as_ref().unwrap().id.clone();
    let cancel = |claim_token: &str| CancelOrderRequest {
        order_id: id.clone(),
        claim_token: claim_token.into(),
    };

    let denied = cafe
        .client
        .cancel_order(cancel("not-the-token"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let cancelled = cafe
        .client
        .cancel_order(cancel(&ticket.claim_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, OrderStatus::Cancelled as i32);
    assert!(!cancelled.note.is_empty());
    // The customer's buzzer says so, and stops.
    assert_eq!(statuses(&drain(second).await), [OrderStatus::Cancelled]);
    // Cancelling again is harmless.
    let again = cafe
        .client
        .cancel_order(cancel(&ticket.claim_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status, OrderStatus::Cancelled as i32);

    // A finished order cannot be cancelled.
    let first = drain(first).await;
    let done = first[0].clone();
    let late = cafe
        .client
        .cancel_order(CancelOrderRequest {
            order_id: done.order.unwrap().id,
            claim_token: done.claim_token,
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
}

/// Orders an espresso (1 s at scale 0.05) and checks it is ready well before
/// a 3 s mocha could have finished since `started`: the only barista was
/// freed, not kept brewing for nobody.
async fn assert_next_order_is_served_at_once(cafe: &mut cafe_testkit::TestCafe, started: Instant) {
    let next = cafe
        .client
        .order_coffee(order("Bo", "espresso"))
        .await
        .unwrap();
    assert_eq!(
        next.into_inner().order.unwrap().status,
        OrderStatus::Ready as i32
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn cancelling_a_brewing_order_frees_its_barista() {
    let scale = 0.05; // a mocha takes 3 s
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(scale)
    })
    .await;
    let mut slow = cafe.buzzer("Ada", "mocha").await;
    let ticket = slow.next().await.unwrap().unwrap();
    until_brewing(&mut slow).await;

    let started = Instant::now();
    cafe.client
        .cancel_order(CancelOrderRequest {
            order_id: ticket.order.unwrap().id,
            claim_token: ticket.claim_token,
        })
        .await
        .unwrap();
    // The next order is brewed at once, not after the mocha's 3 s.
    assert_next_order_is_served_at_once(&mut cafe, started).await;
}

#[tokio::test]
async fn a_counter_customer_who_leaves_frees_the_barista() {
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.05) // a mocha takes 3 s
    })
    .await;
    let mut request = tonic::Request::new(order("Ada", "mocha"));
    request.set_timeout(Duration::from_millis(300));
    let status = cafe.client.order_coffee(request).await.unwrap_err();
    // tonic's server reports an expired grpc-timeout as CANCELLED.
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );

    let started = Instant::now();
    assert_next_order_is_served_at_once(&mut cafe, started).await;
}
