//! Metrics across services: a café on a remote barista says how many
//! replicas are up, and a counter customer who leaves mid-brew leaves
//! nothing behind on either side: the café's order and call, the barista's
//! brew and its stream, all back within a second, as both `/metrics` say.

use std::{net::SocketAddr, time::Duration};

use cafe_domain::menu::TimeScale;
use cafe_testkit::{
    LIMIT,
    barista::{barista_config, spawn_barista},
    metrics::scrape_until,
    order, remote_config, spawn_cafe, with_metrics,
};

const WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_counter_customer_leaving_mid_brew_frees_the_remote_barista() {
    // Real brew times: a latte takes 40 s, longer than the test.
    let mut barista_config = barista_config("barista-1", 1);
    barista_config.time_scale = TimeScale::new(1.0).unwrap();
    barista_config.server.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let barista = spawn_barista(barista_config);
    let barista_metrics = barista.metrics_addr.unwrap();
    let cafe = spawn_cafe(with_metrics(remote_config(&[barista.url()]))).await;
    let cafe_metrics = cafe.metrics_addr.unwrap();
    // Up, with its one barista free (read from its station).
    scrape_until(cafe_metrics, LIMIT, "the barista up", |scrape| {
        scrape.get("cafe_remote_baristas_up", &[]) == 1.0
            && scrape.get("cafe_remote_barista_slots", &[]) == 1.0
            && scrape.get("cafe_remote_barista_slots_free", &[]) == 1.0
    })
    .await;
    let baseline = cafe.scrape().await.get("tokio_alive_tasks", &[]);

    let mut client = cafe.client.clone();
    let waiting = tokio::spawn(async move { client.order_coffee(order("Ana", "latte")).await });
    scrape_until(barista_metrics, LIMIT, "the barista brewing", |scrape| {
        scrape.get("barista_baristas_free", &[]) == 0.0
    })
    .await;
    assert_eq!(
        cafe.scrape()
            .await
            .get("cafe_remote_barista_slots_free", &[]),
        0.0
    );
    waiting.abort();

    scrape_until(
        barista_metrics,
        WITHIN,
        "the barista free, its brew and stream gone",
        |scrape| {
            scrape.get("barista_baristas_free", &[]) == 1.0
                && scrape.get("barista_brews_in_flight", &[]) == 0.0
                && scrape.get("grpc_server_calls_in_flight", &[("grpc_method", "Brew")]) == 0.0
        },
    )
    .await;
    let cafe_after = scrape_until(
        cafe_metrics,
        WITHIN,
        "the café's order cancelled and its tasks back",
        |scrape| {
            scrape.get("cafe_orders", &[("status", "brewing")]) == 0.0
                && scrape.get(
                    "grpc_server_calls_in_flight",
                    &[("grpc_method", "OrderCoffee")],
                ) == 0.0
                && scrape.get("cafe_order_followers", &[]) == 0.0
                && scrape.get("tokio_alive_tasks", &[]) <= baseline
                && scrape.get("cafe_remote_barista_slots_free", &[]) == 1.0
        },
    )
    .await;
    assert_eq!(
        cafe_after.get("cafe_orders_ended_total", &[("status", "cancelled")]),
        1.0
    );

    // And when the barista goes, the café says so.
    barista.kill();
    scrape_until(cafe_metrics, LIMIT, "no barista up", |scrape| {
        scrape.get("cafe_remote_baristas_up", &[]) == 0.0
    })
    .await;
}
