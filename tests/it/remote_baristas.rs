//! The café dispatching to remote baristas, across the two services:
//! as many drinks in flight as the replicas have baristas (and the rest in
//! the café's line, in their true places), spreading, retries when one
//! dies, no barista at all, cafés sharing a replica, closing, and deadlines
//! that free a remote barista at once. Real servers over real gRPC; each
//! barista runs on its own runtime so a test can kill it.
//!
//! Here, the line with remote baristas: who is brewing, who waits, and in
//! what place; in [`dispatch`], which barista brews and what happens when
//! one is killed, missing, closing or too slow for a deadline.

mod dispatch;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use cafe_domain::{
    menu::TimeScale,
    proto::v1::{
        CancelOrderRequest, OrderEvent, OrderStatus, WatchBoardRequest, WatchOrderRequest,
    },
};
use cafe_testkit::{
    Config, LIMIT, TestCafe,
    barista::{barista_config, free_addr, spawn_barista, spawn_barista_at},
    metrics::scrape_until,
    remote_config, spawn_cafe, status_of, until_brewing, with_metrics,
};
use grpc_serving::ServerFlags;
use tokio::time::timeout;
use tonic::Streaming;
use tonic_health::pb::health_check_response::ServingStatus;

/// A barista replica whose drinks take real time (a latte 40 s): nothing
/// finishes while a test looks at who is brewing.
fn slow_barista(name: &str, baristas: u16) -> cafe_barista::Config {
    cafe_barista::Config {
        time_scale: TimeScale::new(1.0).unwrap(),
        ..barista_config(name, baristas)
    }
}

/// Every open order on the board, by id: its status and who brews it.
#[derive(Default)]
struct Board(HashMap<String, (OrderStatus, String)>);

impl Board {
    fn brewing(&self) -> usize {
        self.count(OrderStatus::Brewing)
    }

    fn count(&self, status: OrderStatus) -> usize {
        self.0.values().filter(|(s, _)| *s == status).count()
    }

    fn ids(&self, status: OrderStatus) -> Vec<String> {
        let mut ids: Vec<String> = self
            .0
            .iter()
            .filter(|(_, (s, _))| *s == status)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort(); // order ids are not in placing order; positions say it
        ids
    }

    /// Reads the board stream until `done` holds, checking `always` after
    /// every event; fails the test after [`LIMIT`].
    async fn follow_until(
        &mut self,
        board: &mut Streaming<OrderEvent>,
        what: &str,
        always: impl Fn(&Self),
        done: impl Fn(&Self) -> bool,
    ) {
        let reading = async {
            while !done(self) {
                let event = board.message().await.unwrap().expect("the board goes on");
                let order = event.order.as_ref().unwrap();
                self.0
                    .insert(order.id.clone(), (status_of(&event), order.barista.clone()));
                always(self);
            }
        };
        if timeout(LIMIT, reading).await.is_err() {
            let statuses: Vec<_> = self.0.values().collect();
            panic!("never {what}: {statuses:?}");
        }
    }
}

/// Where each order is in line now (its `WatchOrder`'s first event).
async fn positions(cafe: &TestCafe, ids: &[String]) -> Vec<u32> {
    let mut positions = Vec::new();
    for id in ids {
        let mut watch = cafe
            .client
            .clone()
            .watch_order(WatchOrderRequest {
                order_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let now = watch.message().await.unwrap().unwrap();
        assert_eq!(status_of(&now), OrderStatus::Queued, "{now:?}");
        positions.push(now.queue_position);
    }
    positions
}

/// Places `n` buzzer orders for lattes; the buzzers stay open.
async fn place_lattes(cafe: &mut TestCafe, n: usize) -> Vec<Streaming<OrderEvent>> {
    let mut buzzers = Vec::new();
    for i in 0..n {
        buzzers.push(cafe.buzzer(&format!("C{i}"), "latte").await);
    }
    buzzers
}

/// The queued orders' places, sorted: with the line the only line they are
/// exactly 1..=n (none hidden in a replica, none twice).
async fn assert_true_places(cafe: &TestCafe, board: &Board) {
    let queued = board.ids(OrderStatus::Queued);
    let mut places = positions(cafe, &queued).await;
    places.sort_unstable();
    let want: Vec<u32> = (1..=queued.len() as u32).collect();
    assert_eq!(places, want, "the queued orders' places in line");
}

#[tokio::test]
async fn drinks_in_flight_follow_the_replicas_baristas_and_the_rest_wait_in_line() {
    // One replica of 2 now; two more, of 2 each, will start where the café
    // already looks (as `--scale barista=3` does).
    let first = spawn_barista(slow_barista("barista-1", 2));
    let later = [free_addr(), free_addr()];
    let urls = [
        first.url(),
        format!("http://{}", later[0]),
        format!("http://{}", later[1]),
    ];
    // A short grace: the 40 s lattes in hand are left when it closes.
    let mut config = with_metrics(remote_config(&urls));
    config.server.shutdown_grace = Duration::from_millis(200);
    let mut cafe = spawn_cafe(config).await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;
    let mut stream = cafe
        .client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut board = Board::default();

    // Ten lattes, two baristas: exactly two brew, eight wait in line.
    let _buzzers = place_lattes(&mut cafe, 10).await;
    let at_most = |slots: usize| {
        move |board: &Board| {
            // Never more brewing than baristas: no drink waits unseen
            // inside a replica while the board says it is brewing.
            assert!(board.brewing() <= slots, "{} brewing", board.brewing());
        }
    };
    board
        .follow_until(&mut stream, "2 brewing, 8 queued", at_most(2), |b| {
            b.brewing() == 2 && b.count(OrderStatus::Queued) == 8
        })
        .await;
    assert_true_places(&cafe, &board).await;
    let scrape = cafe.scrape().await;
    assert_eq!(scrape.get("cafe_remote_barista_slots", &[]), 2.0);
    assert_eq!(scrape.get("cafe_remote_barista_slots_free", &[]), 0.0);

    // Two more replicas join mid-rush: six brew, four wait.
    let _second = spawn_barista_at(slow_barista("barista-2", 2), later[0]);
    let _third = spawn_barista_at(slow_barista("barista-3", 2), later[1]);
    board
        .follow_until(&mut stream, "6 brewing, 4 queued", at_most(6), |b| {
            b.brewing() == 6 && b.count(OrderStatus::Queued) == 4
        })
        .await;
    assert_true_places(&cafe, &board).await;
    let on = |replica: &str| {
        board
            .0
            .values()
            .filter(|(s, who)| *s == OrderStatus::Brewing && who.starts_with(replica))
            .count()
    };
    assert_eq!(
        (on("barista-1/"), on("barista-2/"), on("barista-3/")),
        (2, 2, 2)
    );

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_replica_that_leaves_mid_rush_takes_its_baristas_and_its_drinks_finish_elsewhere() {
    // Two replicas of 2; a latte takes 2 s.
    let config = |name: &str| cafe_barista::Config {
        time_scale: TimeScale::new(0.05).unwrap(),
        ..barista_config(name, 2)
    };
    let staying = spawn_barista(config("staying"));
    let leaving = spawn_barista(config("leaving"));
    let mut cafe = spawn_cafe(with_metrics(Config {
        barista_resolve_interval: Duration::from_millis(200),
        ..remote_config(&[staying.url(), leaving.url()])
    }))
    .await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;
    let metrics = cafe.metrics_addr.unwrap();
    scrape_until(metrics, LIMIT, "both replicas up", |s| {
        s.get("cafe_remote_barista_slots", &[]) == 4.0
    })
    .await;
    let mut stream = cafe
        .client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut board = Board::default();
    let mut buzzers = place_lattes(&mut cafe, 6).await;
    board
        .follow_until(&mut stream, "4 brewing", |_| {}, |b| b.brewing() == 4)
        .await;
    let were_on_leaving: HashSet<String> = board
        .0
        .iter()
        .filter(|(_, (s, who))| *s == OrderStatus::Brewing && who.starts_with("leaving/"))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(were_on_leaving.len(), 2, "two on each replica");

    leaving.kill();
    scrape_until(metrics, LIMIT, "its baristas gone", |s| {
        s.get("cafe_remote_barista_slots", &[]) == 2.0
    })
    .await;

    // Every drink is finished, those of the replica that left by the other.
    for buzzer in &mut buzzers {
        let mut last = None;
        while let Some(event) = timeout(LIMIT, buzzer.message()).await.unwrap().unwrap() {
            last = event.order;
        }
        let last = last.unwrap();
        assert_eq!(last.status, OrderStatus::Ready as i32, "{last:?}");
        assert!(last.barista.starts_with("staying/"), "{last:?}");
    }

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn closing_with_remote_baristas_cancels_the_orders_in_line_as_embedded_ones_do() {
    let barista = spawn_barista(slow_barista("solo", 1));
    let mut cafe = spawn_cafe(Config {
        server: ServerFlags {
            shutdown_grace: Duration::from_millis(500),
            ..ServerFlags::default()
        },
        ..remote_config(&[barista.url()])
    })
    .await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;
    let mut stream = cafe
        .client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut board = Board::default();
    let buzzers = place_lattes(&mut cafe, 3).await;
    board
        .follow_until(
            &mut stream,
            "1 brewing, 2 queued",
            |_| {},
            |b| b.brewing() == 1 && b.count(OrderStatus::Queued) == 2,
        )
        .await;
    let queued: HashSet<String> = board.ids(OrderStatus::Queued).into_iter().collect();

    cafe.shutdown_within(Duration::from_secs(10)).await;
    // The buzzers' last words: the two in line were cancelled, as with
    // embedded baristas (memory store), not failed for want of a barista.
    for mut buzzer in buzzers {
        let mut last = None;
        while let Ok(Some(event)) = buzzer.message().await {
            last = event.order;
        }
        let last = last.unwrap();
        if queued.contains(&last.id) {
            assert_eq!(last.status, OrderStatus::Cancelled as i32, "{last:?}");
        }
    }
}

#[tokio::test]
async fn a_replica_full_with_another_cafes_drink_turns_the_order_away_and_it_keeps_its_place() {
    // One barista, shared by two cafés that do not know of each other. At
    // this scale a tea takes 9 s and an espresso 1 s.
    let mut config = barista_config("shared", 1);
    config.time_scale = TimeScale::new(0.05).unwrap();
    config.server.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let barista = spawn_barista(config);
    let barista_metrics = barista.metrics_addr.unwrap();
    let mut first = spawn_cafe(remote_config(&[barista.url()])).await;
    let mut second = spawn_cafe(with_metrics(remote_config(&[barista.url()]))).await;
    first.wait_for_health(ServingStatus::Serving, LIMIT).await;
    second.wait_for_health(ServingStatus::Serving, LIMIT).await;

    let mut tea = first.buzzer("Ada", "tea").await;
    let ticket = tea.message().await.unwrap().unwrap();
    until_brewing(&mut tea).await;

    // The second café thinks the barista is free: the replica turns its
    // order away at once...
    let mut espresso = second.buzzer("Bo", "espresso").await;
    let turned_away = [
        ("grpc_service", "cafe.v1.Barista"),
        ("grpc_method", "Brew"),
        ("grpc_code", "RESOURCE_EXHAUSTED"),
    ];
    scrape_until(barista_metrics, LIMIT, "a brew turned away", |s| {
        // No sample at all until the first one is counted.
        s.value("grpc_server_handling_seconds_count", &turned_away)
            .is_some_and(|count| count >= 1.0)
    })
    .await;
    // ...and it is back in the second café's line, which waits for the
    // replica: not hidden in the replica, not failed.
    scrape_until(
        second.metrics_addr.unwrap(),
        LIMIT,
        "the order back in line",
        |s| {
            s.get("cafe_queue_depth", &[]) == 1.0
                && s.get("cafe_remote_barista_slots_free", &[]) == 0.0
        },
    )
    .await;

    // The first café's customer cancels the tea: the barista is free, the
    // second café sees it (reading the station again) and brews.
    first
        .client
        .cancel_order(CancelOrderRequest {
            order_id: ticket.order.unwrap().id,
            claim_token: ticket.claim_token,
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = timeout(LIMIT, espresso.message()).await.unwrap().unwrap() {
        events.push(event);
    }
    let statuses: Vec<OrderStatus> = events.iter().map(status_of).collect();
    assert_eq!(statuses.last(), Some(&OrderStatus::Ready), "{events:?}");
    assert!(!statuses.contains(&OrderStatus::Failed), "{events:?}");
    assert!(
        events
            .iter()
            .filter(|e| status_of(e) == OrderStatus::Queued)
            .all(|e| e.queue_position == 1),
        "it kept its place at the front: {events:?}"
    );
    assert_eq!(
        events.last().unwrap().order.as_ref().unwrap().barista,
        "shared/Ana"
    );

    first.shutdown_within(Duration::from_secs(10)).await;
    second.shutdown_within(Duration::from_secs(10)).await;
}
