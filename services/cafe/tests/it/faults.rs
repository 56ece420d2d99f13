//! The faults of `--faults-file`, switched on and off in a running
//! `cafe-server` by SIGHUP: each shows as docs/debugging.md says, and is
//! gone again once switched off, with no restart. Each assertion is on
//! what a customer sees (an answer, a refusal, a deadline) or on the RSS
//! gauge, with margins a hundredfold wide: an espresso brews in 20 ms here,
//! and a broken one takes twenty seconds.

#![cfg(unix)]

use std::{path::Path, time::Duration};

use cafe_domain::{
    faults::FaultSpec,
    proto::v1::{GetMenuRequest, Order, OrderStatus, cafe_client::CafeClient},
};
use cafe_testkit::{metrics::scrape, order, process::ServerProcess};
use tonic::{Code, Request, Status, transport::Channel};

/// How long a customer waits at the counter here: a hundred times an
/// espresso's 20 ms, and a tenth of a broken one.
const PATIENCE: Duration = Duration::from_secs(2);

/// A café with one embedded barista brewing at 1/1000 of real time, its
/// faults read from `file` (none at first), and its metrics served.
fn start(file: &Path, extra: &[&str]) -> ServerProcess {
    std::fs::write(file, "none").unwrap();
    let file = file.display().to_string();
    let mut args = vec![
        "--database-url",
        "memory",
        "--baristas",
        "1",
        "--time-scale",
        "0.001",
        "--metrics-listen",
        "127.0.0.1:0",
        "--faults-file",
        &file,
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(env!("CARGO_BIN_EXE_cafe-server"), &args, "café open")
}

/// Writes `spec` to the faults file and sends SIGHUP; returns once the
/// café says it has the new faults in force.
fn switch(cafe: &ServerProcess, file: &Path, spec: &str) {
    std::fs::write(file, spec).unwrap();
    cafe.signal("HUP");
    let line = cafe.wait_for_log("SIGHUP: faults re-read");
    let now: FaultSpec = line["fields"]["faults"].as_str().unwrap().parse().unwrap();
    assert_eq!(now, spec.parse().unwrap(), "{line}");
}

/// An espresso at the counter, waiting at most [`PATIENCE`].
async fn espresso(client: &mut CafeClient<Channel>) -> Result<Order, Status> {
    let mut request = Request::new(order("Ada", "espresso"));
    request.set_timeout(PATIENCE);
    let answer = client.order_coffee(request).await?.into_inner();
    Ok(answer.order.expect("a READY answer carries its order"))
}

async fn ready(client: &mut CafeClient<Channel>) {
    let order = espresso(client).await.expect("an espresso, READY");
    assert_eq!(order.status, OrderStatus::Ready as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_barista_fails_the_brew_until_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults");
    let cafe = start(&file, &[]);
    let mut client = cafe.client().await;
    ready(&mut client).await;

    switch(&cafe, &file, "flaky-barista=1");
    let status = espresso(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("spoiled the drink half-way (fault flaky-barista)"),
        "{status:?}"
    );

    switch(&cafe, &file, "none");
    ready(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_barista_keeps_the_customer_past_their_deadline_until_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults");
    let cafe = start(&file, &[]);
    let mut client = cafe.client().await;
    ready(&mut client).await;

    // Every brew a thousand times longer: 20 s, ten times the patience.
    // Only Ana's: with a name that is not hers, nothing changes.
    switch(&cafe, &file, "slow-barista=1x1000@Ben");
    ready(&mut client).await;
    switch(&cafe, &file, "slow-barista=1x1000@Ana");
    let status = espresso(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // The slow brew was cancelled with its customer: Ana is free again.
    switch(&cafe, &file, "none");
    ready(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_holds_every_order_until_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults");
    let cafe = start(&file, &[]);
    let mut client = cafe.client().await;
    ready(&mut client).await;

    switch(&cafe, &file, "slow-store=30s");
    let status = espresso(&mut client).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    switch(&cafe, &file, "none");
    ready(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_barista_stalls_the_whole_server_until_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults");
    // One worker thread, and brews of a latte taking 8 s (at 1/5 of real
    // time): a blocked worker is a stalled server.
    let cafe = ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--database-url",
            "memory",
            "--baristas",
            "1",
            "--time-scale",
            "0.2",
            "--runtime-workers",
            "1",
            "--faults-file",
            &{
                std::fs::write(&file, "none").unwrap();
                file.display().to_string()
            },
        ],
        "café open",
    );
    let mut client = cafe.client().await;
    // Whether the menu answers within PATIENCE, timed here: a stalled
    // server cannot enforce a deadline either.
    let menu = |client: &mut CafeClient<Channel>| {
        let mut client = client.clone();
        async move {
            tokio::time::timeout(PATIENCE, client.get_menu(GetMenuRequest {}))
                .await
                .is_ok_and(|answer| answer.is_ok())
        }
    };
    // An async barista brewing leaves the menu to answer at once.
    let mut brewing = client.clone();
    let latte = tokio::spawn(async move { brewing.order_coffee(order("Ada", "latte")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(menu(&mut client).await, "the menu while a drink brews");
    latte.await.unwrap().expect("the latte");

    switch(&cafe, &file, "blocking-barista");
    let mut brewing = client.clone();
    let latte = tokio::spawn(async move { brewing.order_coffee(order("Ben", "latte")).await });
    // The barista's brew has the one worker thread: the menu waits behind it.
    // (Asked until the brew has started: before it, the menu still answers.)
    let mut stalled = false;
    for _ in 0..20 {
        if !menu(&mut client).await {
            stalled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stalled, "the menu answered all through a blocking brew");
    latte
        .await
        .unwrap()
        .expect("the blocked latte is made all the same");

    switch(&cafe, &file, "none");
    let mut brewing = client.clone();
    let latte = tokio::spawn(async move { brewing.order_coffee(order("Cy", "latte")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        menu(&mut client).await,
        "the menu while an async drink brews again"
    );
    latte.await.unwrap().expect("the latte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_grows_the_rss_gauge_until_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults");
    let cafe = start(&file, &[]);
    let metrics = cafe.metrics_addr();
    let mut client = cafe.client().await;
    let rss = async || {
        scrape(metrics)
            .await
            .get("process_resident_memory_bytes", &[])
    };
    const MIB: f64 = 1024.0 * 1024.0;
    ready(&mut client).await;

    switch(&cafe, &file, "leak=1MiB");
    let before = rss().await;
    for _ in 0..32 {
        ready(&mut client).await;
    }
    let leaked = rss().await - before;
    assert!(
        leaked >= 24.0 * MIB,
        "32 orders leaking 1 MiB each grew RSS by {leaked} bytes"
    );

    switch(&cafe, &file, "none");
    let before = rss().await;
    for _ in 0..32 {
        ready(&mut client).await;
    }
    let grown = rss().await - before;
    assert!(
        grown < 16.0 * MIB,
        "32 orders without the leak grew RSS by {grown} bytes"
    );
}
