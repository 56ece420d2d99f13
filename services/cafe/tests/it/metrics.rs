//! The café's `/metrics`, scraped over HTTP as Prometheus does: the names
//! and labels are there, and the values move with what the café does.
//! (The leak tests, which read these gauges, are in `leaks`.)

use cafe_domain::proto::v1::{GetOrderRequest, OrderStatus, WatchBoardRequest};
use cafe_testkit::{
    FAST, config_at_scale, fast_config, metrics::scrape_with, order, spawn_cafe, status_of,
    with_metrics,
};
use tonic::Code;

const COFFEE: [(&str, &str); 2] = [
    ("grpc_service", "cafe.v1.Cafe"),
    ("grpc_method", "OrderCoffee"),
];

#[tokio::test]
async fn calls_are_counted_by_method_and_status_code() {
    let mut cafe = spawn_cafe(with_metrics(fast_config())).await;
    let before = cafe.scrape().await;
    // Every method shows in flight from the start, at 0.
    assert_eq!(before.get("grpc_server_calls_in_flight", &COFFEE), 0.0);
    assert_eq!(
        before.value("grpc_server_handling_seconds_count", &COFFEE),
        None,
        "no call yet"
    );

    cafe.client
        .order_coffee(order("Ana", "espresso"))
        .await
        .expect("the espresso is ready");
    let missing = cafe
        .client
        .get_order(GetOrderRequest {
            order_id: "0123456789ab".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let after = cafe.scrape().await;
    let ok = [COFFEE[0], COFFEE[1], ("grpc_code", "OK")];
    assert_eq!(after.get("grpc_server_handling_seconds_count", &ok), 1.0);
    // A medium espresso brews 20 s × FAST: the call took at least that.
    let took = after.get("grpc_server_handling_seconds_sum", &ok);
    assert!(took >= 20.0 * FAST, "the call took {took} s");
    assert_eq!(
        after.get(
            "grpc_server_handling_seconds_bucket",
            &[ok[0], ok[1], ok[2], ("le", "+Inf")]
        ),
        1.0
    );
    assert_eq!(
        after.get(
            "grpc_server_handling_seconds_count",
            &[("grpc_method", "GetOrder"), ("grpc_code", "NOT_FOUND")]
        ),
        1.0
    );
    assert_eq!(after.get("cafe_orders_placed_total", &[]), 1.0);
    assert_eq!(
        after.get("cafe_orders_ended_total", &[("status", "ready")]),
        1.0
    );
    assert_eq!(
        after.get("cafe_orders_ended_total", &[("status", "cancelled")]),
        0.0
    );
    assert_eq!(after.get("cafe_orders_remembered", &[]), 1.0);
    // The READY espresso's phases: in line a moment, brewing its brew time.
    assert_eq!(after.get("cafe_order_queue_wait_seconds_count", &[]), 1.0);
    assert_eq!(after.get("cafe_order_brew_seconds_count", &[]), 1.0);
    let brewed = after.get("cafe_order_brew_seconds_sum", &[]);
    assert!(brewed >= 20.0 * FAST * 0.9, "brewed for {brewed} s");
    assert!(after.get("tokio_alive_tasks", &[]) > 0.0);
    assert_eq!(after.get("trace_spans_dropped_total", &[]), 0.0);
}

#[tokio::test]
async fn the_line_orders_and_streams_are_read_from_the_book() {
    // One barista and a latte of 40 s × 0.25 = 10 s: the first order brews
    // for the whole test, the others wait in line.
    let mut config = with_metrics(config_at_scale(0.25));
    config.baristas = 1;
    let mut cafe = spawn_cafe(config).await;
    let mut first = cafe.buzzer("Ana", "latte").await;
    let mut second = cafe.buzzer("Ben", "latte").await;
    let _third = cafe.buzzer("Cy", "latte").await;
    assert_eq!(
        status_of(&first.message().await.unwrap().unwrap()),
        OrderStatus::Queued
    );
    cafe_testkit::until_brewing(&mut first).await;
    second.message().await.unwrap().unwrap();

    let scrape = cafe.scrape().await;
    assert_eq!(scrape.get("cafe_queue_depth", &[]), 2.0);
    assert_eq!(scrape.get("cafe_queue_capacity", &[]), 1000.0);
    assert_eq!(scrape.get("cafe_orders", &[("status", "queued")]), 2.0);
    assert_eq!(scrape.get("cafe_orders", &[("status", "brewing")]), 1.0);
    assert_eq!(scrape.get("cafe_orders_placed_total", &[]), 3.0);
    assert_eq!(scrape.get("cafe_buzzers_open", &[]), 3.0);
    // Three buzzers, and the barista watching the first order for a cancel.
    assert_eq!(scrape.get("cafe_order_followers", &[]), 4.0);
    assert_eq!(scrape.get("cafe_board_watchers", &[]), 0.0);
    let buzzers = [("grpc_method", "OrderWithBuzzer")];
    assert_eq!(scrape.get("grpc_server_calls_in_flight", &buzzers), 3.0);
    assert_eq!(
        scrape.value("cafe_remote_baristas_up", &[]),
        None,
        "only with remote baristas"
    );

    let _board = cafe
        .client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    let scrape = cafe.scrape().await;
    assert_eq!(scrape.get("cafe_board_watchers", &[]), 1.0);
    assert_eq!(
        scrape.get(
            "grpc_server_calls_in_flight",
            &[("grpc_method", "WatchBoard")]
        ),
        1.0
    );
}

#[tokio::test]
async fn prometheus_gets_openmetrics_and_anything_else_is_refused_plainly() {
    let cafe = spawn_cafe(with_metrics(fast_config())).await;
    let addr = cafe.metrics_addr.unwrap();

    let openmetrics = scrape_with(addr, "/metrics", Some("application/openmetrics-text")).await;
    assert!(
        openmetrics
            .head
            .to_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{}",
        openmetrics.head
    );
    assert!(openmetrics.body.ends_with("# EOF\n"));
    assert!(openmetrics.body.contains("# TYPE cafe_queue_depth gauge"));

    let classic = cafe.scrape().await;
    assert!(
        classic
            .head
            .to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        classic.head
    );
    assert!(!classic.body.contains("# EOF"));

    let elsewhere = scrape_with(addr, "/", None).await;
    assert!(
        elsewhere.head.starts_with("HTTP/1.1 404"),
        "{}",
        elsewhere.head
    );
    assert!(elsewhere.body.contains("/metrics"));
}
