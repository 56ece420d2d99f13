//! Several cafés on one PostgreSQL: real cafés sharing one fresh database
//! (`cafe_testkit::postgres`; skipped, with a line saying so, where
//! `CAFE_TEST_DATABASE_URL` is unset, and failed where `CI` is set too).
//!
//! What is checked is what a customer of either café sees: an order placed
//! at one is visible and followed at the other, no drink is brewed twice,
//! a killed café's drinks are brewed by the other after the lease, and a
//! rolling restart of both under load loses and cancels nothing.

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    time::Duration,
};

use cafe_domain::proto::v1::{
    GetOrderRequest, OrderEvent, OrderRequest, OrderStatus, WatchBoardRequest, WatchOrderRequest,
    cafe_client::CafeClient,
};
use cafe_server::{Config, store::shared::LEASE_EXPIRED_NOTE};
use cafe_testkit::{
    FAST, LIMIT, config_at_scale, connect, order, postgres::TestDatabase, spawn_cafe, status_of,
};
use grpc_serving::ServerFlags;
use sqlx::{PgPool, Row};
use tonic::{Code, Streaming, transport::Channel};

/// A café on the shared line in `db`, brewing at `scale`, taking the
/// drinks of a café silent for 3 s (three heartbeats: a loaded machine
/// may delay one, and a live café must not be taken for dead here).
fn on_the_line(db: &TestDatabase, scale: f64) -> Config {
    let config = config_at_scale(scale);
    Config {
        database_url: Some(db.url.clone()),
        lease: Duration::from_secs(3),
        server: ServerFlags {
            shutdown_grace: Duration::from_secs(5),
            ..config.server
        },
        ..config
    }
}

async fn pool(db: &TestDatabase) -> PgPool {
    PgPool::connect(&db.url)
        .await
        .expect("connect to the test database")
}

/// The next event of a stream, within [`LIMIT`].
async fn next_event(stream: &mut Streaming<OrderEvent>) -> OrderEvent {
    tokio::time::timeout(LIMIT, stream.message())
        .await
        .expect("an event in time")
        .expect("the stream is OK")
        .expect("the stream goes on")
}

/// Reads a stream until its order is `want`, returning every event.
async fn until(stream: &mut Streaming<OrderEvent>, want: OrderStatus) -> Vec<OrderEvent> {
    let mut events = Vec::new();
    loop {
        let event = next_event(stream).await;
        let done = status_of(&event) == want;
        events.push(event);
        if done {
            return events;
        }
    }
}

fn with_request_id(mut request: OrderRequest, request_id: &str) -> OrderRequest {
    request.request_id = request_id.into();
    request
}

#[tokio::test]
async fn an_order_placed_at_one_cafe_is_seen_and_followed_at_the_other() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    let mut a = spawn_cafe(on_the_line(&db, FAST)).await;
    let mut b = spawn_cafe(on_the_line(&db, FAST)).await;
    let mut board = b
        .client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();

    let mut buzzer = a
        .client
        .order_with_buzzer(with_request_id(order("ann", "latte"), "r-1"))
        .await
        .unwrap()
        .into_inner();
    let ticket = next_event(&mut buzzer).await;
    assert_eq!(status_of(&ticket), OrderStatus::Queued);
    let id = ticket.order.as_ref().unwrap().id.clone();

    // Café B knows it at once (from the database if its news is not there
    // yet), follows it, and shows it on its board.
    let seen = b
        .client
        .get_order(GetOrderRequest {
            order_id: id.clone(),
        })
        .await
        .expect("café B finds the order placed at café A")
        .into_inner();
    assert_eq!(
        (seen.customer.as_str(), seen.drink.as_str()),
        ("ann", "latte")
    );
    let mut watch = b
        .client
        .watch_order(WatchOrderRequest {
            order_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let events = until(&mut watch, OrderStatus::Ready).await;
    assert!(
        events
            .iter()
            .all(|event| event.order.as_ref().unwrap().id == id)
    );
    loop {
        let event = next_event(&mut board).await;
        if event.order.as_ref().unwrap().id == id && status_of(&event) == OrderStatus::Ready {
            break;
        }
    }
    until(&mut buzzer, OrderStatus::Ready).await;

    // A retry at café B with the same request id gets the same order.
    let retried = b
        .client
        .order_coffee(with_request_id(order("ann", "latte"), "r-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.order.unwrap().id, id);
    // ... and one for another drink is refused there too, naming the field.
    let reused = b
        .client
        .order_coffee(with_request_id(order("ann", "espresso"), "r-1"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert!(
        reused.message().contains("request_id"),
        "{}",
        reused.message()
    );
}

#[tokio::test]
async fn the_baristas_of_two_cafes_take_from_one_line_and_brew_each_drink_once() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    let a = spawn_cafe(on_the_line(&db, FAST)).await;
    let b = spawn_cafe(on_the_line(&db, FAST)).await;
    let orders = 40;
    let mut counter = tokio::task::JoinSet::new();
    for i in 0..orders {
        let mut client = if i % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        counter.spawn(async move {
            client
                .order_coffee(order(&format!("customer-{i}"), "espresso"))
                .await
                .expect("every order is brewed")
                .into_inner()
                .order
                .unwrap()
        });
    }
    let mut ids = HashSet::new();
    while let Some(order) = counter.join_next().await {
        let order = order.unwrap();
        assert_eq!(order.status, OrderStatus::Ready as i32);
        ids.insert(order.id);
    }
    assert_eq!(ids.len(), orders);

    // Placed, claimed once, ready: three writes (version 2) for each, and
    // both cafés brewed.
    let pool = pool(&db).await;
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE status = 3 AND version = 2) AS once, \
                count(DISTINCT cafe_id) AS cafes FROM orders",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row.get::<i64, _>("once"),
        orders as i64,
        "every drink brewed once"
    );
    assert_eq!(row.get::<i64, _>("cafes"), 2, "both cafés brewed");
}

/// A `cafe-server` process on the shared line, for a test that kills it.
struct CafeProcess {
    child: Child,
    address: String,
}

impl CafeProcess {
    fn start(db: &TestDatabase, scale: &str) -> CafeProcess {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_cafe-server"))
            .args(["--listen", "127.0.0.1:0", "--time-scale", scale])
            .args(["--database-url", &db.url, "--log-format", "json"])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start cafe-server");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        // Read on a thread until the café says where it listens; the rest
        // of its log is drained there too, so it never blocks on a full pipe.
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Ok(line) = serde_json::from_str::<serde_json::Value>(&line)
                    && line["fields"]["message"] == "café open"
                    && let Some(address) = line["fields"]["address"].as_str()
                {
                    let _ = address_tx.send(address.to_owned());
                }
            }
        });
        let address = address_rx
            .recv_timeout(LIMIT)
            .expect("the café opens in time");
        CafeProcess { child, address }
    }

    async fn client(&self) -> CafeClient<Channel> {
        connect(self.address.parse().unwrap()).await
    }
}

impl Drop for CafeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_drinks_of_a_killed_cafe_are_brewed_by_the_other_after_the_lease() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    // Café A brews slowly (a latte takes 10 s), so it is surely still
    // brewing both drinks when it is killed.
    let mut a = CafeProcess::start(&db, "0.25");
    let mut client = a.client().await;
    let mut buzzers = Vec::new();
    for customer in ["ann", "bob"] {
        let mut buzzer = client
            .order_with_buzzer(order(customer, "latte"))
            .await
            .unwrap()
            .into_inner();
        let brewing = until(&mut buzzer, OrderStatus::Brewing).await;
        buzzers.push(brewing.last().unwrap().order.clone().unwrap().id);
    }

    // Café B joins, sees them brewing at A; then A is killed (SIGKILL: no
    // hand-back, no goodbye).
    let mut b = spawn_cafe(on_the_line(&db, FAST)).await;
    let mut watches = Vec::new();
    for id in &buzzers {
        let watch = b
            .client
            .watch_order(WatchOrderRequest {
                order_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        watches.push(watch);
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    for mut watch in watches {
        let events = until(&mut watch, OrderStatus::Ready).await;
        let statuses: Vec<OrderStatus> = events.iter().map(status_of).collect();
        let back_in_line = events.iter().any(|event| {
            status_of(event) == OrderStatus::Queued
                && event.order.as_ref().unwrap().note == LEASE_EXPIRED_NOTE
        });
        assert!(back_in_line, "back in line with a note: {statuses:?}");
    }
    // Placed, claimed at A, back in line, claimed at B, ready: five writes.
    let pool = pool(&db).await;
    for id in &buzzers {
        let row = sqlx::query("SELECT status, version FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            (row.get::<i32, _>("status"), row.get::<i64, _>("version")),
            (3, 4)
        );
    }
}

#[tokio::test]
async fn a_rolling_restart_under_load_brews_every_accepted_order() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    // Espressos take 100 ms here: the line stays busy through the restarts.
    let scale = FAST * 4.0;
    let mut cafes = [
        Some(spawn_cafe(on_the_line(&db, scale)).await),
        Some(spawn_cafe(on_the_line(&db, scale)).await),
    ];
    let addresses = tokio::sync::watch::Sender::new(
        cafes
            .iter()
            .map(|cafe| cafe.as_ref().unwrap().addr)
            .collect::<Vec<_>>(),
    );

    // The load: customers ordering with buzzers and a request id, going to
    // the other café when one says it is closing (as a load balancer would).
    let orders = 200;
    let mut load_addresses = addresses.subscribe();
    let load = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for i in 0..orders {
            let request = with_request_id(
                order(&format!("customer-{i}"), "espresso"),
                &format!("r-{i}"),
            );
            let mut attempt = 0;
            loop {
                let cafes = load_addresses.borrow_and_update().clone();
                let address = cafes[(i + attempt) % cafes.len()];
                attempt += 1;
                let mut client = connect(address).await;
                match client.order_with_buzzer(request.clone()).await {
                    Ok(response) => {
                        let mut buzzer = response.into_inner();
                        let ticket = next_event(&mut buzzer).await;
                        accepted.push(ticket.order.unwrap().id);
                        break;
                    }
                    Err(status) if status.code() == Code::Unavailable && attempt < 20 => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(status) => panic!("order {i} refused: {status}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        accepted
    });

    // Restart one café, then the other, while the orders come in.
    for slot in 0..cafes.len() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let old = cafes[slot].take().unwrap();
        let fresh = spawn_cafe(on_the_line(&db, scale)).await;
        addresses.send_modify(|addresses| addresses[slot] = fresh.addr);
        old.shutdown_within(LIMIT).await;
        cafes[slot] = Some(fresh);
    }
    let accepted = load.await.unwrap();

    // Every accepted order is brewed; none is cancelled or failed.
    let pool = pool(&db).await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    let counts = loop {
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE status IN (1, 2)) AS open, \
                    count(*) FILTER (WHERE status = 3) AS ready, \
                    count(*) FILTER (WHERE status = 4) AS cancelled, \
                    count(*) FILTER (WHERE status = 5) AS failed FROM orders",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let counts: [i64; 4] = ["open", "ready", "cancelled", "failed"].map(|c| row.get(c));
        if counts[0] == 0 || tokio::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "rolling restart: {} accepted, {} ready, {} cancelled, {} failed, {} still open",
        accepted.len(),
        counts[1],
        counts[2],
        counts[3],
        counts[0]
    );
    assert_eq!(accepted.len(), orders);
    assert_eq!(accepted.iter().collect::<HashSet<_>>().len(), orders);
    assert_eq!(
        counts,
        [0, orders as i64, 0, 0],
        "[open, ready, cancelled, failed]"
    );
}
