//! The barista backend on its own: a `Brew` streams `started` then
//! `finished`, and a bad request names its field. Real servers over real
//! gRPC, each on its own runtime (see `cafe_testkit::barista`).

use std::time::Duration;

use cafe_domain::proto::v1::brew_event::Event;
use cafe_testkit::barista::{barista_config, brew_request, spawn_barista};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn a_brew_streams_started_with_the_replica_name_then_finished() {
    let barista = spawn_barista(barista_config("barista-7", 1));
    let mut client = barista.client().await;

    let mut events = client
        .brew(brew_request("ord-1", "espresso"))
        .await
        .unwrap()
        .into_inner();
    let first = events.message().await.unwrap().unwrap().event.unwrap();
    let Event::Started(started) = first else {
        panic!("expected started first, got {first:?}");
    };
    assert_eq!(started.barista, "barista-7/Ana");
    assert!(started.started_at.is_some());
    let second = events.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(second, Event::Finished(_)), "got {second:?}");
    assert!(events.message().await.unwrap().is_none(), "ends OK");

    barista.shutdown_within(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_bad_brew_request_names_the_field() {
    let barista = spawn_barista(barista_config("b", 1));
    let mut client = barista.client().await;

    let status = client
        .brew(brew_request("ord-1", "frappuccino"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["drink"]);

    let mut large_espresso = brew_request("", "espresso");
    large_espresso.size = cafe_domain::proto::v1::Size::Large as i32;
    let status = client.brew(large_espresso).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("order_id"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("size large"),
        "{}",
        status.message()
    );
}
