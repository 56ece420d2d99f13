//! Which remote barista brews: orders spread over two, a brew retried on
//! the other when one is killed, no barista at all, the last one dying, a
//! deadline shorter than the brew, a barista closing, one found by DNS.

use std::{collections::HashSet, time::Duration};

use cafe_domain::{menu::TimeScale, proto::v1::OrderStatus};
use cafe_testkit::{
    Config, LIMIT,
    barista::{barista_config, free_addr, spawn_barista, spawn_barista_at},
    order, remote_config, spawn_cafe, until_brewing,
};
use grpc_serving::ServerFlags;
use tokio::time::{Instant, timeout};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

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
