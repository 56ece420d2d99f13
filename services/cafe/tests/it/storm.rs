//! A connection storm, and the memory it leaves behind: the real
//! `cafe-server` takes 12,000 connections at once (past its
//! `--max-connections` of 10,000), each speaking HTTP/2 so the café builds
//! a connection for it, then they all close. Within 30 s its resident
//! memory must be back within twice what it was before: what a storm
//! takes is given back, not kept by the allocator for ever.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use cafe_testkit::process::ServerProcess;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Connections in the storm.
const STORM: usize = 12_000;

/// How soon the memory must come back.
const GIVEN_BACK_WITHIN: Duration = Duration::from_secs(30);

/// The client's HTTP/2 preface and an empty SETTINGS frame: what makes a
/// server set up an HTTP/2 connection (its buffers, its streams' table).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Raises this process's open-files limit to its hard limit (the café,
/// started after, inherits it); false if that is below what the storm
/// needs.
fn enough_files() -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return false;
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return false;
        }
    }
    limit.rlim_cur >= (STORM + 1_000) as libc::rlim_t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_comes_back_after_a_connection_storm() {
    if !enough_files() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must allow {STORM} open files"
        );
        eprintln!("skipped: the open-files limit is below {STORM}");
        return;
    }
    let cafe = ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &["--database-url", "memory"],
        "café open",
    );
    // One call first, so the baseline is a café that has served.
    let mut client = cafe.client().await;
    client
        .get_menu(cafe_domain::proto::v1::GetMenuRequest {})
        .await
        .expect("the menu");
    let before = cafe.rss_kib();

    // The storm: every connection opened and greeted at once, then held
    // until all are open (the last 2,000 are closed by the café).
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..STORM {
        let addr = cafe.addr;
        opening.spawn(async move {
            let mut socket = TcpStream::connect(addr).await.ok()?;
            socket.write_all(PREFACE).await.ok()?;
            let mut settings = [0u8; 9];
            // The café's SETTINGS: its HTTP/2 connection is up.
            socket.read_exact(&mut settings).await.ok()?;
            Some(socket)
        });
    }
    let mut held = Vec::with_capacity(STORM);
    while let Some(opened) = opening.join_next().await {
        held.extend(opened.expect("a connecting task"));
    }
    let peak = cafe.rss_kib();
    assert!(
        held.len() >= 5_000,
        "only {} connections were taken",
        held.len()
    );
    drop(held);

    let until = Instant::now() + GIVEN_BACK_WITHIN;
    let mut now = cafe.rss_kib();
    while now > 2 * before {
        assert!(
            Instant::now() < until,
            "RSS {now} KiB {GIVEN_BACK_WITHIN:?} after the storm closed: \
             {before} KiB before it, {peak} KiB at its peak"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = cafe.rss_kib();
    }
    eprintln!("RSS: {before} KiB before, {peak} KiB at the peak, {now} KiB after");
    // And it still serves.
    client
        .get_menu(cafe_domain::proto::v1::GetMenuRequest {})
        .await
        .expect("the menu after the storm");
}
