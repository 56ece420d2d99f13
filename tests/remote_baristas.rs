//! The café dispatching to remote baristas, across the two services:
//! as many drinks in flight as the replicas have baristas (and the rest in
//! the café's line, in their true places), spreading, retries when one
//! dies, no barista at all, cafés sharing a replica, closing, and deadlines
//! that free a remote barista at once. Real servers over real gRPC; each
//! barista runs on its own runtime so a test can kill it.

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
    order, remote_config, spawn_cafe, status_of, until_brewing, with_metrics,
};
use grpc_serving::ServerFlags;
use tokio::time::{Instant, timeout};
use tonic::{Code, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;

/// A barista replica whose drinks take real time (a latte 40 s): nothing
/// finishes while a test looks at who is brewing.
fn slow_barista(name: &str, baristas: u16) -> cafe_barista::Config {
    cafe_barista::Config {
        time_scale: TimeScale::new(1.0).unwrap(),
        server: ServerFlags {
            ..ServerFlags::default()
        },
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
        server: ServerFlags {
            ..ServerFlags::default()
        },
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

#[tokio::test]
async fn concurrent_orders_spread_over_two_baristas() {
    let one = spawn_barista(barista_config("barista-1", 2));
    let two = spawn_barista(barista_config("barista-2", 2));
    let mut cafe = spawn_cafe(remote_config(&[one.url(), two.url()])).await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;

    // Both replicas must be up before the real test: the café is SERVING
    // once the first is. Order one at a time until each has brewed
    // something (bounded; equally free replicas take turns, so this takes
    // a few orders).
    let mut seen = HashSet::new();
    for round in 0.. {
        assert!(round < 40, "only ever brewed on {seen:?}");
        let ready = cafe
            .client
            .order_coffee(order("Warm", "espresso"))
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        seen.insert(ready.barista.split('/').next().unwrap().to_owned());
        if seen.len() == 2 {
            break;
        }
    }

    // Eight at once, four in flight: each goes to the replica with the
    // most free baristas, so both get a share.
    let orders = (0..8).map(|i| {
        let mut client = cafe.client.clone();
        async move {
            client
                .order_coffee(order(&format!("C{i}"), "latte"))
                .await
                .unwrap()
                .into_inner()
                .order
                .unwrap()
        }
    });
    let ready = timeout(LIMIT, futures::future::join_all(orders))
        .await
        .unwrap();
    let on = |replica: &str| {
        ready
            .iter()
            .filter(|o| o.barista.starts_with(&format!("{replica}/")))
            .count()
    };
    assert_eq!(on("barista-1") + on("barista-2"), 8, "{ready:?}");
    assert!(
        on("barista-1") >= 2 && on("barista-2") >= 2,
        "spread: {} and {}",
        on("barista-1"),
        on("barista-2")
    );

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_barista_killed_mid_brew_the_order_is_retried_on_the_other() {
    // A latte takes 2 s here: long enough to kill its barista mid-brew.
    let slow = |name: &str| cafe_barista::Config {
        time_scale: TimeScale::new(0.05).unwrap(),
        server: ServerFlags {
            ..ServerFlags::default()
        },
        ..barista_config(name, 1)
    };
    let mut one = Some(spawn_barista(slow("barista-1")));
    let mut two = Some(spawn_barista(slow("barista-2")));
    let urls = [one.as_ref().unwrap().url(), two.as_ref().unwrap().url()];
    let mut cafe = spawn_cafe(remote_config(&urls)).await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;

    let mut buzzer = cafe.buzzer("Ada", "latte").await;
    // Wait for BREWING, and kill whichever barista picked it up.
    let first_barista = until_brewing(&mut buzzer).await.order.unwrap().barista;
    let killed_at = Instant::now();
    let (dead, alive) = if first_barista.starts_with("barista-1/") {
        (one.take().unwrap(), "barista-2/")
    } else {
        (two.take().unwrap(), "barista-1/")
    };
    dead.kill();

    let mut rest = Vec::new();
    while let Some(event) = timeout(LIMIT, buzzer.message()).await.unwrap().unwrap() {
        rest.push(event.order.unwrap());
    }
    let last = rest.last().unwrap();
    assert_eq!(last.status, OrderStatus::Ready as i32, "{rest:?}");
    assert!(
        last.barista.starts_with(alive),
        "finished by {}",
        last.barista
    );
    assert!(
        rest.iter()
            .any(|o| o.note.contains(&first_barista) && o.note.contains("retrying")),
        "the buzzer shows the retry: {rest:?}"
    );
    let retried = rest
        .iter()
        .find(|o| o.status == OrderStatus::Brewing as i32 && o.barista.starts_with(alive))
        .expect("BREWING again on the other barista");
    assert!(retried.started_at.is_some());
    eprintln!(
        "killed to READY on the other barista: {:?}",
        killed_at.elapsed()
    );

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn with_no_barista_orders_are_unavailable_until_one_comes() {
    let addr = free_addr();
    let mut cafe = spawn_cafe(remote_config(&[format!("http://{addr}")])).await;
    cafe.wait_for_health(ServingStatus::NotServing, LIMIT).await;

    let status = cafe
        .client
        .order_coffee(order("Ada", "latte"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("no barista"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains(&addr.to_string()),
        "{}",
        status.message()
    );

    // A barista starts where the café looks: it finds it on its own.
    let _barista = spawn_barista_at(barista_config("late", 1), addr);
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;
    let ready = cafe
        .client
        .order_coffee(order("Ada", "latte"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(ready.status, OrderStatus::Ready as i32);
    assert_eq!(ready.barista, "late/Ana");

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_order_waiting_when_the_last_barista_dies_fails_after_the_wait() {
    let barista = spawn_barista(cafe_barista::Config {
        time_scale: TimeScale::new(0.05).unwrap(),
        server: ServerFlags {
            ..ServerFlags::default()
        },
        ..barista_config("only", 1)
    });
    let mut cafe = spawn_cafe(Config {
        barista_wait: Duration::from_millis(500),
        ..remote_config(&[barista.url()])
    })
    .await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;

    let mut buzzer = cafe.buzzer("Ada", "latte").await;
    until_brewing(&mut buzzer).await;
    barista.kill();

    let mut last = None;
    while let Some(event) = timeout(LIMIT, buzzer.message()).await.unwrap().unwrap() {
        last = event.order;
    }
    let last = last.unwrap();
    assert_eq!(last.status, OrderStatus::Failed as i32, "{last:?}");
    assert!(
        last.note.contains("no barista was reachable"),
        "{}",
        last.note
    );
    cafe.wait_for_health(ServingStatus::NotServing, LIMIT).await;

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_deadline_shorter_than_the_brew_frees_the_remote_barista_at_once() {
    // One barista; a pot of tea takes 9 s here, a latte 2 s.
    let barista = spawn_barista(cafe_barista::Config {
        time_scale: TimeScale::new(0.05).unwrap(),
        server: ServerFlags {
            ..ServerFlags::default()
        },
        ..barista_config("solo", 1)
    });
    let mut cafe = spawn_cafe(remote_config(&[barista.url()])).await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;

    let placed = Instant::now();
    let mut request = tonic::Request::new(order("Ada", "tea"));
    request.set_timeout(Duration::from_millis(300));
    let status = cafe.client.order_coffee(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // The tea was dropped, so Ana is free: the next order starts long
    // before the tea would have been done.
    let mut buzzer = cafe.buzzer("Bo", "latte").await;
    let brewing = until_brewing(&mut buzzer).await.order.unwrap();
    let waited = placed.elapsed();
    assert_eq!(brewing.barista, "solo/Ana");
    assert!(
        waited < Duration::from_secs(5),
        "the second order started {waited:?} after the first was placed; the tea takes 9 s"
    );

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_barista_shutting_down_finishes_its_drink_and_new_orders_go_elsewhere() {
    // A latte takes 2 s; the grace is far longer, so a shutdown that waited
    // for it (instead of for the drink) would show.
    let config = |name: &str| cafe_barista::Config {
        time_scale: TimeScale::new(0.05).unwrap(),
        server: ServerFlags {
            shutdown_grace: Duration::from_secs(30),
            ..ServerFlags::default()
        },
        ..barista_config(name, 1)
    };
    let mut one = Some(spawn_barista(config("barista-1")));
    let mut two = Some(spawn_barista(config("barista-2")));
    let urls = [one.as_ref().unwrap().url(), two.as_ref().unwrap().url()];
    let mut cafe = spawn_cafe(remote_config(&urls)).await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;

    let mut first = cafe.buzzer("Ada", "latte").await;
    let brewer = until_brewing(&mut first).await.order.unwrap().barista;
    let (leaving, other) = if brewer.starts_with("barista-1/") {
        (one.take().unwrap(), "barista-2/")
    } else {
        (two.take().unwrap(), "barista-1/")
    };
    let started = Instant::now();
    let stopping = tokio::spawn(leaving.shutdown_within(LIMIT));

    // The drink in hand is finished by the barista who is leaving.
    let mut last = None;
    while let Some(event) = timeout(LIMIT, first.message()).await.unwrap().unwrap() {
        last = event.order;
    }
    let last = last.unwrap();
    assert_eq!(last.status, OrderStatus::Ready as i32, "{last:?}");
    assert_eq!(last.barista, brewer);

    // A new order goes to the one who stays (directly, or after the leaving
    // one turned it away as closing).
    let second = cafe
        .client
        .order_coffee(order("Bo", "espresso"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert!(second.barista.starts_with(other), "{second:?}");

    stopping.await.unwrap();
    let took = started.elapsed();
    eprintln!("graceful barista shutdown with a drink in hand: {took:?}");
    assert!(
        took < Duration::from_secs(15),
        "the barista took {took:?} to shut down; its drink needed 2 s"
    );

    cafe.shutdown_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_barista_found_through_a_dns_name_brews() {
    // `localhost` goes through `lookup_host` like a compose service name; it
    // may also resolve to ::1, where nobody listens: that address stays down
    // and the café uses the one that answers.
    let barista = spawn_barista(barista_config("named", 1));
    let mut cafe = spawn_cafe(Config {
        barista_resolve_interval: Duration::from_millis(200),
        ..remote_config(&[format!("localhost:{}", barista.addr.port())])
    })
    .await;
    cafe.wait_for_health(ServingStatus::Serving, LIMIT).await;
    let ready = cafe
        .client
        .order_coffee(order("Ada", "espresso"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(ready.barista, "named/Ana");

    cafe.shutdown_within(Duration::from_secs(10)).await;
}
