//! The order store's faults, on real files under the real `cafe-server`
//! binary: whatever the disk (or the link to PostgreSQL) does, no order
//! the café confirmed is lost, nobody is left hanging, and the café comes
//! back by itself. What is done to the SQLite file itself is
//! `store_files.rs`.

#![cfg(unix)]

use std::time::{Duration, Instant};

use cafe_domain::proto::v1::{GetOrderRequest, Order, OrderStatus, cafe_client::CafeClient};
use cafe_testkit::{
    LIMIT,
    faultproxy::FaultProxy,
    order,
    process::{ServerProcess, SmallDisk},
};
use grpc_serving::retry_hint::PUSHBACK;
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Starts the café on the SQLite store in `dir`: four baristas, 20 ms lattes.
pub(crate) fn start(dir: &std::path::Path) -> ServerProcess {
    let dir = dir.display().to_string();
    ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--data-dir",
            &dir,
            "--baristas",
            "4",
            "--time-scale",
            "0.0005",
        ],
        "café open",
    )
}

/// A latte at the counter with `request_id`.
pub(crate) async fn counter(
    client: &mut CafeClient<Channel>,
    request_id: &str,
) -> Result<Order, Status> {
    let mut request = order("Ada", "latte");
    request.request_id = request_id.into();
    let answer = client.order_coffee(request).await?.into_inner();
    Ok(answer.order.expect("a READY answer carries its order"))
}

/// The café's health as its `Check` says it.
pub(crate) async fn serving(cafe: &ServerProcess) -> bool {
    let channel = Channel::from_shared(format!("http://{}", cafe.addr))
        .unwrap()
        .connect_lazy();
    let check = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "cafe.v1.Cafe".into(),
        })
        .await
        .expect("health answers");
    check.into_inner().status == 1 // SERVING
}

/// Every confirmed order is found READY, and a retry of its request id
/// gets it rather than a second drink.
pub(crate) async fn all_kept(cafe: &ServerProcess, confirmed: &[(String, Order)]) {
    let mut client = cafe.client().await;
    for (request_id, before) in confirmed {
        let found = client
            .get_order(GetOrderRequest {
                order_id: before.id.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("order {request_id} was lost: {status:?}"))
            .into_inner();
        assert_eq!(found.status, OrderStatus::Ready as i32, "{request_id}");
        let again = counter(&mut client, request_id).await.expect("a retry");
        assert_eq!(again.id, before.id, "{request_id} brewed twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_confirmed_order_and_the_cafe_comes_back_by_itself() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let cafe = start(disk.path());
    let mut client = cafe.client().await;
    // Every order the café answered READY, by request id.
    let mut confirmed = Vec::new();
    for i in 0..10 {
        let id = format!("before-{i}");
        let order = counter(&mut client, &id).await.expect("an order before");
        confirmed.push((id, order));
    }

    // The disk fills: orders go on arriving until the café says it cannot
    // keep them. Each is answered (READY while a write still fits, or
    // UNAVAILABLE), never left to the customer's deadline.
    disk.fill();
    let mut refused = 0;
    let until = Instant::now() + LIMIT;
    for i in 0.. {
        if refused >= 5 || Instant::now() > until {
            break;
        }
        let id = format!("full-{i}");
        match tokio::time::timeout(LIMIT, counter(&mut client, &id)).await {
            Ok(Ok(order)) => confirmed.push((id, order)),
            Ok(Err(status)) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.metadata().contains_key(PUSHBACK), "a retry hint");
                refused += 1;
            }
            Err(_) => panic!("order {id} was left hanging on a full disk"),
        }
    }
    assert!(
        refused >= 5,
        "the café never said its store was failing ({} orders confirmed on a full disk)",
        confirmed.len()
    );
    assert!(!serving(&cafe).await, "health says SERVING on a full disk");

    // The space comes back: the café serves again without a restart.
    disk.empty();
    let until = Instant::now() + LIMIT;
    while !serving(&cafe).await {
        assert!(Instant::now() < until, "the café did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..10 {
        let id = format!("after-{i}");
        let order = counter(&mut client, &id).await.expect("an order after");
        confirmed.push((id, order));
    }

    // A restart on the same files remembers every confirmed order, and a
    // retry of its request id finds it rather than brewing another.
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");
    let cafe = start(disk.path());
    all_kept(&cafe, &confirmed).await;
}

#[test]
fn a_cafe_whose_store_cannot_open_never_says_it_is_open() {
    // The data directory would be inside a file: it cannot be made.
    let file = tempfile::NamedTempFile::new().unwrap();
    let data_dir = file.path().join("cafe");
    let output = cafe_testkit::process::clean_command(env!("CARGO_BIN_EXE_cafe-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(&data_dir)
        .env("RUST_LOG", "info")
        .output()
        .expect("run cafe-server");
    assert!(!output.status.success(), "a café without its store starts");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        !log.contains("café open"),
        "it said it was open before its store failed:\n{log}"
    );
    assert!(
        log.contains("data directory"),
        "the error names the cause:\n{log}"
    );
}

#[test]
fn a_second_cafe_on_a_data_dir_another_holds_says_so_at_once_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());
    let started = Instant::now();
    let output = cafe_testkit::process::clean_command(env!("CARGO_BIN_EXE_cafe-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run cafe-server");
    let took = started.elapsed();
    assert!(!output.status.success(), "two cafés on one data directory");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // One line, said once, naming the directory, the café that holds it
    // and what to do.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    let error = errors[0];
    assert!(error.contains(&dir.path().display().to_string()), "{error}");
    assert!(error.contains(&format!("pid {}", first.pid())), "{error}");
    assert!(error.contains("--data-dir"), "{error}");
    assert!(
        !stderr.contains("Caused by"),
        "a chain of causes:\n{stderr}"
    );
    assert!(
        !stderr.contains("café open"),
        "it said it was open:\n{stderr}"
    );
    // Refused before SQLite's busy timeout (5 s) could start: a bound a
    // loaded machine cannot break, that waiting for the timeout always does.
    assert!(took < Duration::from_secs(4), "took {took:?}:\n{stderr}");
    // The first café is unharmed, and the directory is free once it stops.
    first.terminate();
    assert!(first.wait_exit(), "the first café closes cleanly");
    let _again = start(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_link_cut_and_restored_loses_no_order_and_the_cafe_comes_back() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    let proxy = FaultProxy::in_front_of(&db.url).await;
    let url = proxy.url_through(&db.url);
    let cafe = ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--database-url",
            &url,
            "--baristas",
            "4",
            "--time-scale",
            "0.0005",
        ],
        "café open",
    );
    let mut client = cafe.client().await;
    let mut confirmed = Vec::new();
    for i in 0..10 {
        let id = format!("before-{i}");
        let order = counter(&mut client, &id).await.expect("an order before");
        confirmed.push((id, order));
    }

    // The link is cut: every order is answered (READY, or UNAVAILABLE),
    // none left to its customer's deadline.
    proxy.cut();
    let mut refused = Vec::new();
    for i in 0..5 {
        let id = format!("cut-{i}");
        match tokio::time::timeout(LIMIT, counter(&mut client, &id)).await {
            Ok(Ok(order)) => confirmed.push((id, order)),
            Ok(Err(status)) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                refused.push(id);
            }
            Err(_) => panic!("order {id} was left hanging while the database was away"),
        }
    }
    assert!(!refused.is_empty(), "no order noticed the cut");

    // The link is back: the café serves again without a restart, and a
    // refused request id, retried, is one order however often it is sent.
    proxy.restore();
    let until = Instant::now() + LIMIT;
    let first_after = loop {
        match counter(&mut client, "after-0").await {
            Ok(order) => break order,
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
        assert!(Instant::now() < until, "the café did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(serving(&cafe).await, "health is SERVING again");
    confirmed.push(("after-0".into(), first_after));
    for id in refused {
        let order = counter(&mut client, &id).await.expect("a retry after");
        let again = counter(&mut client, &id).await.expect("a second retry");
        assert_eq!(again.id, order.id, "{id} brewed twice");
        confirmed.push((id, order));
    }

    // A new café on the same database remembers every confirmed order.
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");
    let cafe = ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &["--database-url", &db.url],
        "café open",
    );
    all_kept(&cafe, &confirmed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cafe_started_while_postgresql_is_stalled_says_so_and_exits() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    let proxy = FaultProxy::in_front_of(&db.url).await;
    proxy.stall();
    let url = proxy.url_through(&db.url);
    // Its own thread: waiting for the process must not stall the proxy.
    let output = tokio::task::spawn_blocking(move || {
        cafe_testkit::process::clean_command(env!("CARGO_BIN_EXE_cafe-server"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--database-url", &url])
            .env("RUST_LOG", "info")
            .output()
            .expect("run cafe-server")
    });
    let output = tokio::time::timeout(LIMIT, output)
        .await
        .expect("the café waited for ever on a stalled database")
        .unwrap();
    assert!(!output.status.success(), "a café without its store started");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!log.contains("café open"), "it said it was open:\n{log}");
    assert!(
        log.contains("cannot open the order store"),
        "the error names the store:\n{log}"
    );
}
