//! A barista replica closing: the drink in hand is finished, and a brew
//! asked for meanwhile is refused `UNAVAILABLE` with a retry hint (the
//! shared scaffold's, as the café's), so the café sends it elsewhere.

use std::time::Duration;

use cafe_domain::{menu::TimeScale, proto::v1::brew_event::Event};
use cafe_testkit::{
    LIMIT,
    barista::{barista_config, brew_request, spawn_barista},
};
use grpc_serving::ServerFlags;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

#[tokio::test]
async fn while_closing_a_new_brew_gets_unavailable_with_a_retry_hint_and_the_drink_in_hand_is_finished()
 {
    let mut config = barista_config("b", 1);
    config.time_scale = TimeScale::new(0.05).unwrap(); // a latte takes 2 s
    config.server = ServerFlags {
        shutdown_grace: Duration::from_secs(10),
        ..config.server
    };
    let barista = spawn_barista(config);
    let mut client = barista.client().await;
    let channel = Channel::from_shared(barista.url()).unwrap().connect().await;
    let mut health = HealthClient::new(channel.unwrap());

    let mut in_hand = client
        .brew(brew_request("ord-1", "latte"))
        .await
        .unwrap()
        .into_inner();
    let started = in_hand.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(started, Event::Started(_)), "{started:?}");

    let closing = tokio::spawn(barista.shutdown_within(LIMIT));
    // Closing has begun once health says so (the connection stays open
    // while the drink in hand is brewed).
    let not_serving = async {
        loop {
            let check = health.check(HealthCheckRequest::default()).await.unwrap();
            if check.into_inner().status == ServingStatus::NotServing as i32 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, not_serving)
        .await
        .expect("NOT_SERVING while closing");

    let refused = client
        .brew(brew_request("ord-2", "espresso"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("another barista"), "{refused:?}");
    let pushback = refused.metadata().get("grpc-retry-pushback-ms");
    assert!(pushback.is_some(), "{refused:?}");
    let retry = refused.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.unwrap() > Duration::ZERO);

    let finished = in_hand.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(finished, Event::Finished(_)), "{finished:?}");
    assert!(in_hand.message().await.unwrap().is_none(), "ends OK");
    closing.await.unwrap();
}
