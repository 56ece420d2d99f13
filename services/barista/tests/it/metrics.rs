//! A barista replica's `/metrics`, scraped over HTTP: brews in flight and
//! free baristas move with the brews, a brew past the baristas is counted
//! as RESOURCE_EXHAUSTED, and a brew whose caller goes away
//! leaves nothing behind (the barista free, no task or stream left) within
//! a second.

use std::{net::SocketAddr, time::Duration};

use cafe_domain::{menu::TimeScale, proto::v1::brew_event::Event};
use cafe_testkit::{
    LIMIT,
    barista::{barista_config, brew_request, spawn_barista},
    metrics::{scrape, scrape_until},
};
use tonic::Code;

const BREW: [(&str, &str); 2] = [("grpc_service", "cafe.v1.Barista"), ("grpc_method", "Brew")];

#[tokio::test]
async fn brews_in_flight_and_free_baristas_move_and_a_dropped_brew_leaves_nothing_behind() {
    // One barista, brewing at real time: a latte takes 40 s, longer than
    // the test.
    let mut config = barista_config("b-1", 1);
    config.time_scale = TimeScale::new(1.0).unwrap();
    config.server.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let barista = spawn_barista(config);
    let addr = barista.metrics_addr.expect("metrics served");
    let mut client = barista.client().await;

    // A refused brew first: the connection is up, and the code is counted.
    let refused = client
        .brew(brew_request("ord-0", "frappuccino"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let before = scrape(addr).await;
    let invalid = [BREW[0], BREW[1], ("grpc_code", "INVALID_ARGUMENT")];
    assert_eq!(
        before.get("grpc_server_handling_seconds_count", &invalid),
        1.0
    );
    assert_eq!(before.get("barista_baristas", &[]), 1.0);
    assert_eq!(before.get("barista_baristas_free", &[]), 1.0);
    assert_eq!(before.get("barista_brews_in_flight", &[]), 0.0);
    let baseline = before.get("tokio_alive_tasks", &[]);

    // The first brew takes the barista; the second is turned away at once
    // (a replica keeps no queue), and counted so.
    let mut first = client
        .brew(brew_request("ord-1", "latte"))
        .await
        .unwrap()
        .into_inner();
    let started = first.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(started, Event::Started(_)), "got {started:?}");
    let turned_away = client
        .brew(brew_request("ord-2", "latte"))
        .await
        .unwrap_err();
    assert_eq!(turned_away.code(), Code::ResourceExhausted);
    let busy = scrape_until(addr, LIMIT, "one brew in flight", |scrape| {
        scrape.get("barista_brews_in_flight", &[]) == 1.0
    })
    .await;
    assert_eq!(busy.get("barista_baristas_free", &[]), 0.0);
    assert_eq!(busy.get("grpc_server_calls_in_flight", &BREW), 1.0);
    let exhausted = [BREW[0], BREW[1], ("grpc_code", "RESOURCE_EXHAUSTED")];
    assert_eq!(
        busy.get("grpc_server_handling_seconds_count", &exhausted),
        1.0
    );

    // The café hangs up (its customer left).
    drop(first);
    let after = scrape_until(
        addr,
        Duration::from_secs(1),
        "the barista free and nothing left behind",
        |scrape| {
            scrape.get("barista_brews_in_flight", &[]) == 0.0
                && scrape.get("barista_baristas_free", &[]) == 1.0
                && scrape.get("grpc_server_calls_in_flight", &BREW) == 0.0
                && scrape.get("tokio_alive_tasks", &[]) <= baseline
        },
    )
    .await;
    let cancelled = [BREW[0], BREW[1], ("grpc_code", "CANCELLED")];
    assert_eq!(
        after.get("grpc_server_handling_seconds_count", &cancelled),
        1.0
    );
}
