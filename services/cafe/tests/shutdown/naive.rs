//! Customers that ignore the retry hint: whatever a call ends with, they
//! send it again at once, until the café can no longer be reached. This is
//! the plain tonic client with no retry policy, on the real `cafe-server`
//! binary and its SIGTERM, on the default SQLite store.
//!
//! What they may hear while the café closes: their order's final state,
//! `UNAVAILABLE` (from the café, or from their own client for a call the
//! café refused to take) or `CANCELLED`; never `INTERNAL` or `UNKNOWN`,
//! which say something broke. And nothing acknowledged is lost: after a
//! restart on the same store, each customer sends its last request once
//! more (the same `request_id`) and it ends final, as the same order when
//! the café had given it a ticket.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use cafe_domain::proto::v1::{GetStatsRequest, OrderRequest, OrderStatus, cafe_client::CafeClient};
use cafe_testkit::{LIMIT, connect, order, process::ServerProcess};
use tonic::{Code, Status, transport::Channel};

use super::{ALONE, BARISTAS, CONNECTIONS, IN_FLIGHT};

/// Starts the real café on the SQLite store in `dir`, brewing at
/// `time_scale`, and waits until it serves.
fn start(dir: &Path, time_scale: &str) -> ServerProcess {
    let dir = dir.display().to_string();
    let baristas = BARISTAS.to_string();
    let capacity = (10 * IN_FLIGHT).to_string();
    ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--data-dir",
            &dir,
            "--baristas",
            &baristas,
            "--queue-capacity",
            &capacity,
            "--time-scale",
            time_scale,
            // A latte takes 2 s at 0.05: the drinks being brewed are
            // finished well within the grace, which leaves a loaded
            // machine time for every connection's GOAWAY and last answers.
            "--shutdown-grace",
            "10s",
        ],
        "café open",
    )
}

/// What the customers heard: how many calls ended with each code, one
/// message of each, and the order id each ticket or answer gave, by
/// `request_id`.
#[derive(Debug, Default)]
struct Heard {
    codes: HashMap<Code, (u64, String)>,
    acknowledged: HashMap<String, String>,
}

/// Whether a status says the café could not even be reached (it has gone):
/// tonic's client makes it from the refused connection.
fn unreachable(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.message().contains("tcp connect error")
}

/// One call, a buzzer order read to its end or an order at the counter:
/// its final status, or how it failed. The order's id goes into `heard` as
/// soon as the café gives it.
async fn call(
    cafe: &mut CafeClient<Channel>,
    buzzer: bool,
    request: OrderRequest,
    heard: &Mutex<Heard>,
) -> Result<OrderStatus, Status> {
    let acknowledged = |id: String| {
        let mut heard = heard.lock().unwrap();
        let first = heard
            .acknowledged
            .entry(request.request_id.clone())
            .or_insert_with(|| id.clone());
        assert_eq!(*first, id, "{} gave two orders", request.request_id);
    };
    if !buzzer {
        let order = cafe.order_coffee(request.clone()).await?.into_inner().order;
        let order = order.expect("an answer carries its order");
        acknowledged(order.id);
        return Ok(OrderStatus::try_from(order.status).unwrap());
    }
    let mut events = cafe.order_with_buzzer(request.clone()).await?.into_inner();
    let mut last = OrderStatus::Unspecified;
    while let Some(event) = events.message().await? {
        let order = event.order.expect("an event carries its order");
        if last == OrderStatus::Unspecified {
            acknowledged(order.id);
        }
        last = OrderStatus::try_from(order.status).unwrap();
    }
    Ok(last)
}

/// A customer: orders (a new `request_id` after each final answer) and
/// sends the same order again at once after anything else, until the café
/// is gone. Returns its last request, the one whose fate it does not know.
async fn customer(
    mut cafe: CafeClient<Channel>,
    buzzer: bool,
    n: usize,
    heard: Arc<Mutex<Heard>>,
) -> (bool, OrderRequest) {
    for attempt in 0.. {
        let mut request = order(&format!("customer {n}"), "latte");
        request.request_id = format!("{n}-{attempt}");
        loop {
            match call(&mut cafe, buzzer, request.clone(), &heard).await {
                Ok(_) => break,
                Err(status) if unreachable(&status) => return (buzzer, request),
                Err(status) => {
                    let mut heard = heard.lock().unwrap();
                    let (count, _) = heard
                        .codes
                        .entry(status.code())
                        .or_insert_with(|| (0, format!("{status:?}")));
                    *count += 1;
                }
            }
        }
    }
    unreachable!("a customer orders until the café is gone")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_ignores_the_retry_hint_hears_no_internal_or_unknown_and_loses_nothing() {
    let _alone = ALONE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cafe = start(dir.path(), "0.05");
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(connect(cafe.addr).await);
    }

    // Half the customers use buzzers, half wait at the counter.
    let heard = Arc::new(Mutex::new(Heard::default()));
    let mut customers = tokio::task::JoinSet::new();
    for n in 0..IN_FLIGHT {
        let client = channels[n % CONNECTIONS].clone();
        customers.spawn(customer(client, n % 2 == 0, n, Arc::clone(&heard)));
    }

    // SIGTERM once every order is in and a full shift of baristas is brewing.
    let mut watcher = cafe.client().await;
    let in_flight = async {
        loop {
            let stats = watcher
                .get_stats(GetStatsRequest {})
                .await
                .unwrap()
                .into_inner();
            let orders = (stats.orders_queued + stats.orders_brewing) as usize;
            if orders >= IN_FLIGHT && stats.orders_brewing == BARISTAS {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, in_flight)
        .await
        .expect("2,000 orders in flight");
    drop(watcher);
    cafe.terminate();

    let mut last_requests = Vec::new();
    let everyone_done = async {
        while let Some(last) = customers.join_next().await {
            last_requests.push(last.expect("a customer panicked"));
        }
    };
    tokio::time::timeout(LIMIT, everyone_done)
        .await
        .expect("every customer found the café gone");
    let (exit, log) = tokio::task::spawn_blocking(move || cafe.wait_exit_with_log())
        .await
        .unwrap();
    for line in &log {
        if line["level"] == "WARN" || line["level"] == "ERROR" {
            eprintln!("café: {line}");
        }
    }
    assert!(exit.success(), "the café exited {exit:?}");

    let heard = Arc::into_inner(heard).unwrap().into_inner().unwrap();
    eprintln!("codes heard while closing: {:?}", heard.codes);
    let wrong: Vec<_> = heard
        .codes
        .iter()
        .filter(|(code, _)| !matches!(code, Code::Unavailable | Code::Cancelled))
        .collect();
    assert!(wrong.is_empty(), "wrong codes: {wrong:?}");

    // After a restart on the same store (fast brewing now), each customer's
    // last request, sent once more, ends final: as the order the café had
    // acknowledged, if it had.
    let cafe = start(dir.path(), "0.0005");
    let heard = Arc::new(Mutex::new(heard));
    let client = cafe.client().await;
    let mut again = tokio::task::JoinSet::new();
    for (buzzer, request) in last_requests {
        let mut client = client.clone();
        let heard = Arc::clone(&heard);
        again.spawn(async move {
            let ended = call(&mut client, buzzer, request.clone(), &heard).await;
            (request.request_id, ended)
        });
    }
    while let Some(ended) = again.join_next().await {
        let (request_id, ended) = ended.unwrap();
        let status = ended.unwrap_or_else(|status| panic!("{request_id}: {status:?}"));
        assert_eq!(status, OrderStatus::Ready, "{request_id}");
    }
}
