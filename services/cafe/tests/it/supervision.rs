//! A dead part stops the café: when a task it cannot work without (a
//! barista's shift, the order store's writer, following a shared line)
//! panics, the real `cafe-server` binary says why in its log, turns
//! NOT_SERVING, closes and exits non-zero, so that its supervisor starts it
//! again; started again on the same store, it brews every order it had
//! acknowledged. The panic is injected (`CAFE_INJECT_PANIC`, see the
//! café's `faults` module): the real task dies at a real step of its work.

#![cfg(unix)]

use cafe_domain::proto::v1::{OrderStatus, WatchOrderRequest, cafe_client::CafeClient};
use cafe_testkit::{LIMIT, order, process::ServerProcess, status_of};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// What the café logs when a critical part stops.
const PART_STOPPED: &str =
    "a part the server cannot work without stopped: closing, to be restarted";

/// Starts the real café with `store` (a `--database-url`), one barista at
/// `time_scale`, and `inject` as `CAFE_INJECT_PANIC` (none if empty).
fn start(store: &str, time_scale: &str, inject: &str) -> ServerProcess {
    let args = [
        "--database-url",
        store,
        "--baristas",
        "1",
        "--time-scale",
        time_scale,
    ];
    let env: &[(&str, &str)] = if inject.is_empty() {
        &[]
    } else {
        &[("CAFE_INJECT_PANIC", inject)]
    };
    ServerProcess::start_with_env(env!("CARGO_BIN_EXE_cafe-server"), &args, env, "café open")
}

/// The café's health, as a stream of statuses from now on.
async fn health_watch(
    cafe: &ServerProcess,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    let channel = Channel::from_shared(format!("http://{}", cafe.addr))
        .unwrap()
        .connect_lazy();
    HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "cafe.v1.Cafe".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
}

/// Places buzzer orders one after another until `count` are placed or
/// one is refused; returns the ids of those ticketed (acknowledged).
async fn place(client: &mut CafeClient<Channel>, count: usize) -> Vec<String> {
    let mut ticketed = Vec::new();
    for n in 0..count {
        let mut request = order(&format!("customer {n}"), "latte");
        request.request_id = format!("order-{n}");
        let Ok(buzzer) = client.order_with_buzzer(request).await else {
            break;
        };
        let mut buzzer = buzzer.into_inner();
        let Ok(Some(ticket)) = buzzer.message().await else {
            break;
        };
        ticketed.push(ticket.order.unwrap().id);
        // The buzzer is dropped: the order goes on without its customer.
    }
    ticketed
}

/// The café stops by itself because `part` died: it logs so, its health
/// turns NOT_SERVING (on `health`, opened before), and it exits non-zero.
async fn stops_because(
    cafe: ServerProcess,
    mut health: tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    part: &str,
) {
    let said = cafe.wait_for_log(PART_STOPPED);
    assert_eq!(said["fields"]["part"], part, "{said}");
    let how = said["fields"]["how"].as_str().unwrap_or_default();
    assert!(how.contains("panicked"), "{said}");
    let not_serving = async {
        while let Some(status) = health.message().await.expect("the health stream") {
            if status.status == 2 {
                return;
            }
        }
        panic!("the health stream ended before NOT_SERVING");
    };
    tokio::time::timeout(LIMIT, not_serving)
        .await
        .expect("NOT_SERVING");
    let (exit, rest) = tokio::task::spawn_blocking(move || cafe.wait_exit_with_log())
        .await
        .unwrap();
    assert!(!exit.success(), "exited {exit:?}; log after: {rest:?}");
}

/// Every order of `ids` ends READY at the café `client` talks to.
async fn all_ready(client: &mut CafeClient<Channel>, ids: &[String]) {
    for id in ids {
        let mut watch = client
            .watch_order(WatchOrderRequest {
                order_id: id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("{id} after the restart: {status:?}"))
            .into_inner();
        let mut last = None;
        while let Some(event) = tokio::time::timeout(LIMIT, watch.message())
            .await
            .expect("the order goes on")
            .expect("the stream is OK")
        {
            last = Some(status_of(&event));
        }
        assert_eq!(last, Some(OrderStatus::Ready), "{id}");
    }
}

#[tokio::test]
async fn a_barista_that_panics_stops_the_cafe_and_a_restart_brews_every_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/cafe.db", dir.path().display());
    // A latte in 200 ms: the orders are all in before the third is taken.
    let cafe = start(&store, "0.005", "barista:3");
    let health = health_watch(&cafe).await;
    let mut client = cafe.client().await;
    let ticketed = place(&mut client, 5).await;
    assert!(ticketed.len() >= 3, "{ticketed:?}");

    stops_because(cafe, health, "barista Ana").await;

    let cafe = start(&store, "0.0005", "");
    all_ready(&mut cafe.client().await, &ticketed).await;
}

#[tokio::test]
async fn a_store_writer_that_panics_stops_the_cafe_and_loses_no_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/cafe.db", dir.path().display());
    let cafe = start(&store, "0.0005", "writer:6");
    let health = health_watch(&cafe).await;
    let mut client = cafe.client().await;
    // Orders until the writer dies: the one waiting for it is refused.
    let ticketed = place(&mut client, 100).await;
    assert!(ticketed.len() < 100, "the writer never died");

    stops_because(cafe, health, "the order store's writer").await;

    let cafe = start(&store, "0.0005", "");
    all_ready(&mut cafe.client().await, &ticketed).await;
}

#[tokio::test]
async fn a_shared_line_follower_that_panics_stops_the_cafe_and_a_restart_brews_its_orders() {
    let Some(database) = cafe_testkit::postgres::database().await else {
        return;
    };
    // A latte in 2 s: the orders are still open when the café dies.
    let cafe = start(&database.url, "0.05", "following:2");
    let health = health_watch(&cafe).await;
    let mut client = cafe.client().await;
    let ticketed = place(&mut client, 3).await;
    assert!(!ticketed.is_empty());

    stops_because(cafe, health, "following the shared line").await;

    let cafe = start(&database.url, "0.0005", "");
    all_ready(&mut cafe.client().await, &ticketed).await;
}
