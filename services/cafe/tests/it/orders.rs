//! The café service end to end: a real server on port 0, real gRPC clients.
//! What a customer does: read the menu, order at the counter or with a
//! buzzer, re-attach, retry with a request id, and be refused when the
//! order is bad or the line is full.
//!
//! Brew times are scaled down (see `cafe_testkit::FAST`) so the suite is quick;
//! timing assertions use wide margins so a loaded 2-core machine cannot
//! break them. Timing *targets* live in the benchmark, not here.

use std::time::Duration;

use cafe_domain::proto::v1::{
    CancelOrderRequest, GetMenuRequest, GetOrderRequest, OrderRequest, OrderStatus, Size,
    WatchOrderRequest,
};
use cafe_server::Config;
use cafe_testkit::{
    FAST, config_at_scale, connect, drain, fast_config, order, spawn_cafe, status_of, statuses,
    until_brewing,
};
use futures::StreamExt;
use grpc_serving::ServerFlags;
use tokio::time::Instant;
use tonic::Code;
use tonic_types::StatusExt;

/// A medium latte's brew time at `scale`.
fn latte_time(scale: f64) -> Duration {
    Duration::from_secs(40).mul_f64(scale)
}

#[tokio::test]
async fn the_menu_lists_every_drink_with_brew_times_and_sizes() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let menu = cafe
        .client
        .get_menu(GetMenuRequest {})
        .await
        .unwrap()
        .into_inner();

    let ids: Vec<&str> = menu.drinks.iter().map(|d| d.id.as_str()).collect();
    for id in [
        "espresso",
        "americano",
        "latte",
        "cappuccino",
        "mocha",
        "tea",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let latte = menu.drinks.iter().find(|d| d.id == "latte").unwrap();
    assert_eq!(latte.brew_time.unwrap().seconds, 40);
    assert_eq!(latte.sizes.len(), 3);
    assert_eq!(menu.time_scale, FAST);
}

#[tokio::test]
async fn a_counter_order_returns_ready_after_the_brew_time() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let started = Instant::now();
    let response = cafe
        .client
        .order_coffee(order("Ada", "latte"))
        .await
        .unwrap()
        .into_inner();
    let waited = started.elapsed();

    let order = response.order.unwrap();
    assert_eq!(order.status, OrderStatus::Ready as i32);
    assert_eq!(order.customer, "Ada");
    assert!(!order.barista.is_empty(), "the barista is named");
    assert!(!response.claim_token.is_empty());
    assert!(order.placed_at.is_some() && order.started_at.is_some() && order.ready_at.is_some());
    // Timers never fire early; the margin only allows for rounding.
    assert!(
        waited >= latte_time(FAST).mul_f64(0.95),
        "ready after {waited:?}"
    );
    cafe.shutdown_within(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_buzzer_gives_a_ticket_at_once_then_every_change_in_order() {
    // A slow brew, so that "at once" is clearly before "ready".
    let scale = 0.02; // a latte takes 800 ms
    let mut cafe = spawn_cafe(config_at_scale(scale)).await;

    let started = Instant::now();
    let mut buzzer = cafe.buzzer("Ada", "latte").await;
    let ticket = buzzer.next().await.unwrap().unwrap();
    let ticket_time = started.elapsed();

    assert_eq!(status_of(&ticket), OrderStatus::Queued);
    assert_eq!(ticket.queue_position, 1);
    assert!(
        !ticket.claim_token.is_empty(),
        "the ticket carries the claim token"
    );
    assert!(
        ticket_time < latte_time(scale) / 2,
        "ticket after {ticket_time:?}"
    );

    let rest = drain(buzzer).await;
    assert_eq!(statuses(&rest), [OrderStatus::Brewing, OrderStatus::Ready]);
    assert!(
        rest.iter().all(|e| e.claim_token.is_empty()),
        "only the ticket has the token"
    );
    let brewing = rest
        .iter()
        .find(|e| status_of(e) == OrderStatus::Brewing)
        .unwrap();
    assert!(!brewing.order.as_ref().unwrap().barista.is_empty());
    assert!(started.elapsed() >= latte_time(scale).mul_f64(0.95));
}

#[tokio::test]
async fn the_buzzer_shows_the_line_moving_up() {
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        ..fast_config()
    })
    .await;
    let first = cafe.buzzer("Ada", "espresso").await;
    let second = cafe.buzzer("Bo", "espresso").await;
    let third = cafe.buzzer("Cy", "espresso").await;

    let (_, _, third) = tokio::join!(drain(first), drain(second), drain(third));
    let positions: Vec<u32> = third
        .iter()
        .filter(|e| status_of(e) == OrderStatus::Queued)
        .map(|e| e.queue_position)
        .collect();
    // The ticket may already show 2 if the first order left the line before
    // it was written, but the last queued event is always position 1.
    assert!(positions.first().is_some_and(|&p| p >= 2), "{positions:?}");
    assert_eq!(positions.last(), Some(&1), "{positions:?}");
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
    assert_eq!(statuses(&third).last(), Some(&OrderStatus::Ready));
}

#[tokio::test]
async fn watch_order_reattaches_mid_brew_and_sees_ready() {
    let scale = 0.02;
    let mut cafe = spawn_cafe(config_at_scale(scale)).await;
    let mut buzzer = cafe.buzzer("Ada", "latte").await;
    let ticket = buzzer.next().await.unwrap().unwrap();
    let id = ticket.order.unwrap().id;
    // Wait until it is brewing, then walk away: the order carries on.
    until_brewing(&mut buzzer).await;
    drop(buzzer);

    let watched = cafe
        .client
        .watch_order(WatchOrderRequest {
            order_id: id.clone(),
        })
        .await
        .unwrap();
    let events = drain(watched.into_inner()).await;
    assert_eq!(
        statuses(&events),
        [OrderStatus::Brewing, OrderStatus::Ready]
    );
    assert!(
        events.iter().all(|e| e.claim_token.is_empty()),
        "watchers never see the token"
    );

    let got = cafe
        .client
        .get_order(GetOrderRequest { order_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, OrderStatus::Ready as i32);
}

#[tokio::test]
async fn unknown_orders_are_not_found() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let missing = || "ord-000000000000".to_string();
    let watch = cafe
        .client
        .watch_order(WatchOrderRequest {
            order_id: missing(),
        })
        .await;
    assert_eq!(watch.unwrap_err().code(), Code::NotFound);
    let get = cafe
        .client
        .get_order(GetOrderRequest {
            order_id: missing(),
        })
        .await;
    assert_eq!(get.unwrap_err().code(), Code::NotFound);
    let cancel = cafe
        .client
        .cancel_order(CancelOrderRequest {
            order_id: missing(),
            claim_token: "x".into(),
        })
        .await;
    assert_eq!(cancel.unwrap_err().code(), Code::NotFound);
}

/// Places `n` counter orders at once, each on its own connection, and
/// returns how long until the last was ready.
async fn rush(addr: std::net::SocketAddr, n: usize) -> Duration {
    let started = Instant::now();
    let orders = (0..n).map(|i| async move {
        let mut client = connect(addr).await;
        let response = client
            .order_coffee(order(&format!("customer {i}"), "latte"))
            .await;
        assert_eq!(
            response.unwrap().into_inner().order.unwrap().status,
            OrderStatus::Ready as i32
        );
    });
    futures::future::join_all(orders).await;
    started.elapsed()
}

#[tokio::test]
async fn concurrent_orders_take_one_brew_with_enough_baristas_and_n_brews_with_one() {
    const N: usize = 4;
    let scale = 0.01; // a latte takes 400 ms
    let brew = latte_time(scale);
    let config = |baristas| Config {
        baristas,
        ..config_at_scale(scale)
    };

    let many = spawn_cafe(config(N as u32)).await;
    let with_many = rush(many.addr, N).await;
    let one = spawn_cafe(config(1)).await;
    let with_one = rush(one.addr, N).await;

    // N baristas brew side by side: about one brew time, far below N of them.
    assert!(
        with_many < brew.mul_f64(N as f64 * 0.5),
        "{N} baristas took {with_many:?}"
    );
    // One barista brews one after another: about N brew times.
    assert!(
        with_one > brew.mul_f64(N as f64 * 0.8),
        "one barista took {with_one:?}"
    );
}

#[tokio::test]
async fn a_full_queue_refuses_orders_with_resource_exhausted() {
    let mut cafe = spawn_cafe(Config {
        baristas: 1,
        queue_capacity: 1,
        time_scale: cafe_domain::menu::TimeScale::REAL, // nothing finishes during the test
        server: ServerFlags {
            shutdown_grace: Duration::from_millis(200),
            ..ServerFlags::default()
        },
        ..Config::default()
    })
    .await;
    // The first is taken by the barista, the second waits, the third is one
    // too many. Each call returns once its ticket is written.
    let mut brewing = cafe.buzzer("Ada", "tea").await;
    until_brewing(&mut brewing).await;
    let _waiting = cafe
        .client
        .order_with_buzzer(order("Bo", "tea"))
        .await
        .unwrap();

    let refused = cafe
        .client
        .order_coffee(order("Cy", "tea"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("queue is full"),
        "{}",
        refused.message()
    );
    cafe.shutdown_within(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_orders_are_refused_naming_the_field() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let long_name = "x".repeat(65);
    let cases: &[(&str, &str, i32, &str)] = &[
        ("", "latte", 0, "customer"),
        ("   ", "latte", 0, "customer"),
        (&long_name, "latte", 0, "customer"),
        ("Ada\u{7}", "latte", 0, "customer"),
        ("Ada\nBo", "latte", 0, "customer"),
        ("Ada", "frappuccino", 0, "drink"),
        ("Ada", "", 0, "drink"),
        ("Ada", "latte", 42, "size"),
        ("Ada", "latte", -1, "size"),
        ("Ada", "espresso", Size::Large as i32, "size"),
    ];
    for &(customer, drink, size, field) in cases {
        let request = OrderRequest {
            customer: customer.into(),
            drink: drink.into(),
            size,
            request_id: String::new(),
        };
        for status in [
            cafe.client.order_coffee(request.clone()).await.unwrap_err(),
            cafe.client
                .order_with_buzzer(request.clone())
                .await
                .unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
            assert!(
                status.message().contains(field),
                "{:?} does not name {field}",
                status.message()
            );
            let bad_request = status
                .get_details_bad_request()
                .expect("a BadRequest detail");
            let fields: Vec<&str> = bad_request
                .field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect();
            assert_eq!(fields, [field], "{request:?}");
        }
    }
    // A long request id is refused too.
    let mut request = order("Ada", "latte");
    request.request_id = "r".repeat(129);
    let status = cafe.client.order_coffee(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("request_id"));

    // None of it hurt the café.
    assert!(
        cafe.client
            .order_coffee(order("Ada", "espresso"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_same_request_id_returns_the_same_order_instead_of_brewing_twice() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let mut request = order("Ada", "latte");
    request.request_id = "retry-7".into();

    // Two tries at once (the first "timed out" from the customer's view and
    // was retried) and one later: all get the same order.
    let mut other = connect(cafe.addr).await;
    let (a, b) = tokio::join!(
        cafe.client.order_coffee(request.clone()),
        other.order_coffee(request.clone())
    );
    let (a, b) = (a.unwrap().into_inner(), b.unwrap().into_inner());
    let later = cafe
        .client
        .order_coffee(request.clone())
        .await
        .unwrap()
        .into_inner();
    let id = a.order.as_ref().unwrap().id.clone();
    assert_eq!(b.order.unwrap().id, id);
    assert_eq!(later.order.unwrap().id, id);
    assert_eq!(a.claim_token, later.claim_token);

    // Another customer's key is their own.
    let mut bo = order("Bo", "latte");
    bo.request_id = "retry-7".into();
    let bo = cafe.client.order_coffee(bo).await.unwrap().into_inner();
    assert_ne!(bo.order.unwrap().id, id);

    // Reusing the key for a different drink is a mistake worth telling.
    request.drink = "mocha".into();
    let status = cafe.client.order_coffee(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("request_id"));
}
