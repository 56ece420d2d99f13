//! Orders survive a crash: the real `cafe-server` binary, on a SQLite file,
//! is killed with `kill -9` (SIGKILL: no shutdown, no flush, nothing runs)
//! and started again on the same file. Every promise the café made before
//! it died is kept after:
//!
//! - the order that was brewing is brewed again, first, and says so;
//! - the queued orders are still in line, in their order;
//! - a finished order is still visible to `GetOrder`;
//! - a retry with the same `request_id` gets the same order;
//! - a claim token still cancels;
//! - a buzzer cut by the crash re-attaches with `WatchOrder` and sees its
//!   order through to READY.
//!
//! A polite SIGTERM loses nothing either (a rolling restart): the line is
//! kept in the store, not cancelled, and a drink the shutdown grace cuts
//! short is brewed again first, not failed.

#![cfg(unix)]

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use cafe_domain::proto::v1::{
    CancelOrderRequest, GetOrderRequest, Order, OrderEvent, OrderStatus, WatchBoardRequest,
    WatchOrderRequest, cafe_client::CafeClient,
};
use cafe_testkit::{LIMIT, order, process::ServerProcess, status_of, until_brewing};
use grpc_serving::retry_hint::PUSHBACK;
use tonic::{Code, Status, transport::Channel};

/// Starts the real binary on the SQLite file in `dir` with one barista
/// brewing at `time_scale` (and `flags`), and waits until it listens.
fn start(dir: &Path, time_scale: &str, flags: &[&str]) -> ServerProcess {
    let store = format!("sqlite://{}/cafe.db", dir.display());
    let args = ["--database-url", &store, "--baristas", "1"];
    let args = [&args[..], &["--time-scale", time_scale], flags].concat();
    ServerProcess::start(env!("CARGO_BIN_EXE_cafe-server"), &args, "café open")
}

async fn get(client: &mut CafeClient<Channel>, id: &str) -> Order {
    client
        .get_order(GetOrderRequest {
            order_id: id.into(),
        })
        .await
        .expect("the café knows the order")
        .into_inner()
}

fn at(time: Option<&prost_types::Timestamp>) -> SystemTime {
    let time = time.expect("a time");
    SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(time.seconds).unwrap(),
            u32::try_from(time.nanos).unwrap(),
        )
}

#[tokio::test]
async fn a_killed_cafe_keeps_every_promise_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();

    // Before: real brew times (a latte takes 40 s), so the first order is
    // still brewing, and the rest waiting, when the café dies.
    let cafe = start(dir.path(), "1", &[]);
    let mut client = cafe.client().await;
    let mut first_request = order("Ada", "latte");
    first_request.request_id = "ada-1".into();
    let mut first = client
        .order_with_buzzer(first_request.clone())
        .await
        .unwrap()
        .into_inner();
    let brewing = until_brewing(&mut first).await;
    let first_id = brewing.order.unwrap().id;

    // Three more wait in line; a fourth is cancelled (finished); a fifth
    // waits, its claim token kept for later. Each ticket arrived, so each
    // order is in the store.
    let mut queued = Vec::new();
    let mut buzzers = Vec::new();
    for customer in ["Bo", "Cy", "Di", "Ed", "Flo"] {
        let mut buzzer = client
            .order_with_buzzer(order(customer, "latte"))
            .await
            .unwrap()
            .into_inner();
        let ticket = buzzer.message().await.unwrap().unwrap();
        assert_eq!(status_of(&ticket), OrderStatus::Queued);
        queued.push((ticket.order.unwrap().id, ticket.claim_token));
        buzzers.push(buzzer);
    }
    let (cancelled_id, cancelled_token) = queued.remove(3);
    let cancelled = client
        .cancel_order(CancelOrderRequest {
            order_id: cancelled_id.clone(),
            claim_token: cancelled_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, OrderStatus::Cancelled as i32);

    cafe.kill();
    let killed_at = SystemTime::now();
    // The buzzers were cut: their streams end in an error, not READY.
    let cut = buzzers[0].message().await;
    assert!(
        !matches!(&cut, Ok(Some(event)) if status_of(event) == OrderStatus::Ready),
        "{cut:?}"
    );

    // After: the same file, fast brewing (a latte in 1 s).
    let cafe = start(dir.path(), "0.025", &[]);
    let restored = cafe.wait_for_log("order store open");
    assert_eq!(restored["fields"]["rebrewed"], 1, "{restored}");
    assert_eq!(restored["fields"]["queued"], 4, "{restored}");
    assert_eq!(restored["fields"]["finished"], 1, "{restored}");
    let mut client = cafe.client().await;

    // The finished order, as it was.
    assert_eq!(
        get(&mut client, &cancelled_id).await.status,
        OrderStatus::Cancelled as i32
    );
    // A retry of the first order gets it back, not a second drink.
    let mut retry = client
        .order_with_buzzer(first_request)
        .await
        .unwrap()
        .into_inner();
    let again = retry.message().await.unwrap().unwrap();
    assert_eq!(again.order.unwrap().id, first_id);
    // The last order's claim token still cancels it.
    let (last_id, last_token) = queued.pop().unwrap();
    let last = client
        .cancel_order(CancelOrderRequest {
            order_id: last_id,
            claim_token: last_token,
        })
        .await
        .expect("the claim token works after a restart")
        .into_inner();
    assert_eq!(last.status, OrderStatus::Cancelled as i32);

    // A buzzer cut by the crash comes back with WatchOrder and sees its
    // order through.
    let (watched_id, _) = queued.last().unwrap().clone();
    let mut watch = client
        .watch_order(WatchOrderRequest {
            order_id: watched_id.clone(),
        })
        .await
        .expect("the order is known after the restart")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(LIMIT, watch.message())
        .await
        .expect("the order goes on")
        .expect("the stream is OK")
    {
        seen.push(status_of(&event));
    }
    assert_eq!(seen.last(), Some(&OrderStatus::Ready), "{seen:?}");

    // The first order was brewed again (after the crash), then the queued
    // ones, in their order.
    let first = get(&mut client, &first_id).await;
    assert_eq!(first.status, OrderStatus::Ready as i32);
    let mut ready_times = vec![at(first.ready_at.as_ref())];
    assert!(at(first.started_at.as_ref()) > killed_at, "brewed again");
    // And GetOrder says why, though a free barista took it at once.
    assert_eq!(
        first.note, "brewed again: the café restarted before it was ready",
        "{first:?}"
    );
    for (id, _) in &queued {
        let order = get(&mut client, id).await;
        assert_eq!(order.status, OrderStatus::Ready as i32, "{order:?}");
        ready_times.push(at(order.ready_at.as_ref()));
    }
    assert!(
        ready_times.is_sorted(),
        "brewed in line order: {ready_times:?}"
    );
    cafe.kill();
}

/// Reads a stream to its end: the events it showed, and how it ended.
async fn to_the_end(buzzer: &mut tonic::Streaming<OrderEvent>) -> (Vec<OrderStatus>, Status) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(LIMIT, buzzer.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(event)) => seen.push(status_of(&event)),
            Ok(None) => return (seen, Status::ok("ended OK")),
            Err(status) => return (seen, status),
        }
    }
}

#[tokio::test]
async fn a_rolling_restart_keeps_the_line_and_the_drink_cut_short() {
    let dir = tempfile::tempdir().unwrap();

    // Before: real brew times (a latte takes 40 s) and a 1 s grace, so the
    // first order is cut short and the rest still wait when the café closes.
    let cafe = start(dir.path(), "1", &["--shutdown-grace", "1s"]);
    let mut client = cafe.client().await;
    let mut first = client
        .order_with_buzzer(order("Ada", "latte"))
        .await
        .unwrap()
        .into_inner();
    let first_id = until_brewing(&mut first).await.order.unwrap().id;
    let mut queued = Vec::new();
    let mut buzzers = Vec::new();
    for customer in ["Bo", "Cy", "Di"] {
        let mut buzzer = client
            .order_with_buzzer(order(customer, "latte"))
            .await
            .unwrap()
            .into_inner();
        let ticket = buzzer.message().await.unwrap().unwrap();
        assert_eq!(status_of(&ticket), OrderStatus::Queued);
        queued.push(ticket.order.unwrap().id);
        buzzers.push(buzzer);
    }
    // A counter customer waits last in line; the board says when the
    // order is in.
    let mut board = client
        .watch_board(WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut counter_request = order("Eve", "latte");
    counter_request.request_id = "eve-1".into();
    let counter = tokio::spawn({
        let (mut client, request) = (client.clone(), counter_request.clone());
        async move { client.order_coffee(request).await }
    });
    let counter_id = loop {
        let update = board.message().await.unwrap().expect("the board goes on");
        let order = update.order.unwrap();
        if order.customer == "Eve" {
            break order.id;
        }
    };
    queued.push(counter_id.clone());

    cafe.terminate();
    let terminated_at = SystemTime::now();

    // Every customer is told to come back, none that their order ended.
    let mut buzzers: Vec<_> = std::iter::once(first).chain(buzzers).collect();
    for buzzer in &mut buzzers {
        let (seen, end) = to_the_end(buzzer).await;
        assert!(
            seen.iter().all(|status| !matches!(
                status,
                OrderStatus::Cancelled | OrderStatus::Failed | OrderStatus::Ready
            )),
            "{seen:?}"
        );
        assert_eq!(end.code(), Code::Unavailable, "{end:?}");
        assert!(end.message().contains("restarting"), "{end:?}");
    }
    let at_the_counter = counter.await.unwrap().expect_err("not served");
    assert_eq!(
        at_the_counter.code(),
        Code::Unavailable,
        "{at_the_counter:?}"
    );
    assert!(
        at_the_counter.message().contains("same request_id"),
        "{at_the_counter:?}"
    );
    // The scaffold's retry hint: come back once the café has gone.
    assert!(
        at_the_counter.metadata().get(PUSHBACK).is_some(),
        "{at_the_counter:?}"
    );
    let kept = cafe
        .wait_for_log("shutdown grace over with drinks still brewing: kept them for the restart");
    assert_eq!(kept["fields"]["kept"], 5, "{kept}");
    assert!(cafe.wait_exit(), "a clean exit");

    // After: the same file, fast brewing (a latte in 1 s).
    let cafe = start(dir.path(), "0.025", &[]);
    let restored = cafe.wait_for_log("order store open");
    assert_eq!(restored["fields"]["rebrewed"], 1, "{restored}");
    assert_eq!(restored["fields"]["queued"], 4, "{restored}");
    assert_eq!(restored["fields"]["finished"], 0, "{restored}");
    let mut client = cafe.client().await;

    // The counter customer retries with the same request id: the same
    // order, last in line, so every order before it is ready by then.
    let served = client
        .order_coffee(counter_request)
        .await
        .expect("served after the restart")
        .into_inner()
        .order
        .unwrap();
    assert_eq!(served.id, counter_id);
    assert_eq!(served.status, OrderStatus::Ready as i32);

    // The drink cut short was brewed again, first; then the line, in order.
    let first = get(&mut client, &first_id).await;
    assert_eq!(first.status, OrderStatus::Ready as i32);
    assert!(
        at(first.started_at.as_ref()) > terminated_at,
        "brewed again"
    );
    assert_eq!(
        first.note, "brewed again: the café restarted before it was ready",
        "{first:?}"
    );
    let mut ready_times = vec![at(first.ready_at.as_ref())];
    for id in &queued {
        let order = get(&mut client, id).await;
        assert_eq!(order.status, OrderStatus::Ready as i32, "{order:?}");
        ready_times.push(at(order.ready_at.as_ref()));
    }
    assert!(
        ready_times.is_sorted(),
        "brewed in line order: {ready_times:?}"
    );
    cafe.kill();
}
