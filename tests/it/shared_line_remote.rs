//! Two cafés on one PostgreSQL line, both brewing on remote `cafe-barista`
//! replicas: each café's dispatcher claims from the shared line once a
//! replica has a free barista, hands the order to it, and writes who brews
//! it and READY in the database. Skipped (with a line saying so) where
//! `CAFE_TEST_DATABASE_URL` is unset; failed where `CI` is set too.

use std::{collections::HashSet, time::Duration};

use cafe_domain::proto::v1::OrderStatus;
use cafe_testkit::{
    Config, LIMIT,
    barista::{barista_config, spawn_barista},
    order, remote_config, spawn_cafe,
};
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn two_cafes_on_one_line_brew_on_remote_baristas() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    let one = spawn_barista(barista_config("barista-1", 2));
    let two = spawn_barista(barista_config("barista-2", 2));
    let on_the_line = |urls: &[String]| Config {
        database_url: Some(db.url.clone()),
        lease: Duration::from_secs(3),
        ..remote_config(urls)
    };
    let a = spawn_cafe(on_the_line(&[one.url()])).await;
    let b = spawn_cafe(on_the_line(&[two.url()])).await;
    a.wait_for_health(ServingStatus::Serving, LIMIT).await;
    b.wait_for_health(ServingStatus::Serving, LIMIT).await;

    let orders = 12;
    let mut counter = tokio::task::JoinSet::new();
    for i in 0..orders {
        let mut client = if i % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        counter.spawn(async move {
            tokio::time::timeout(
                LIMIT,
                client.order_coffee(order(&format!("customer-{i}"), "espresso")),
            )
            .await
            .expect("brewed in time")
            .expect("every order is brewed")
            .into_inner()
            .order
            .unwrap()
        });
    }
    let mut ids = HashSet::new();
    let mut baristas = HashSet::new();
    while let Some(order) = counter.join_next().await {
        let order = order.unwrap();
        assert_eq!(order.status, OrderStatus::Ready as i32);
        ids.insert(order.id);
        // The replica's barista, not the dispatcher that claimed it.
        assert!(
            order.barista.starts_with("barista-"),
            "brewed by {:?}",
            order.barista
        );
        baristas.insert(order.barista.split('/').next().unwrap().to_owned());
    }
    assert_eq!(ids.len(), orders);
    // Each café brews on its own replica, and both cafés took from the line.
    assert_eq!(baristas.len(), 2, "{baristas:?}");
}
