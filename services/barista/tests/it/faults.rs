//! The faults of `--faults-file` on a real `cafe-barista` process,
//! switched on and off by SIGHUP: a flaky barista's brew ends INTERNAL
//! half-way, a slow one's outlasts its caller's deadline, and once switched
//! off both brew as before, with no restart.

#![cfg(unix)]

use std::time::Duration;

use cafe_domain::proto::v1::{barista_client::BaristaClient, brew_event::Event};
use cafe_testkit::{barista::brew_request, process::ServerProcess};
use tonic::{Code, Request, Status, transport::Channel};

/// The barista's answer to one espresso (20 ms here): `Ok` once finished,
/// or the status the stream ended with. The caller waits at most 2 s.
async fn espresso(barista: &ServerProcess) -> Result<(), Status> {
    let channel = Channel::from_shared(format!("http://{}", barista.addr))
        .unwrap()
        .connect()
        .await
        .expect("the barista listens");
    let mut request = Request::new(brew_request("ord-1", "espresso"));
    request.set_timeout(Duration::from_secs(2));
    let mut events = BaristaClient::new(channel)
        .brew(request)
        .await?
        .into_inner();
    loop {
        match events.message().await?.and_then(|event| event.event) {
            Some(Event::Finished(_)) => return Ok(()),
            Some(_) => continue,
            None => panic!("the stream ended with no finished event"),
        }
    }
}

/// Writes `spec` to the faults file and sends SIGHUP; returns once the
/// barista says it has them in force.
fn switch(barista: &ServerProcess, file: &std::path::Path, spec: &str) {
    std::fs::write(file, spec).unwrap();
    barista.signal("HUP");
    barista.wait_for_log("SIGHUP: faults re-read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_and_slow_baristas_switch_on_and_off_by_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults");
    std::fs::write(&file, "none").unwrap();
    let barista = ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-barista"),
        &[
            "--baristas",
            "1",
            "--time-scale",
            "0.001",
            "--faults-file",
            &file.display().to_string(),
        ],
        "baristas ready",
    );
    espresso(&barista).await.expect("an espresso");

    switch(&barista, &file, "flaky-barista=1");
    let status = espresso(&barista).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("spoiled the drink half-way"),
        "{status:?}"
    );

    // A thousand times slower: 20 s, ten times the caller's patience.
    switch(&barista, &file, "slow-barista=1x1000");
    let status = espresso(&barista).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    switch(&barista, &file, "none");
    espresso(&barista).await.expect("an espresso once mended");
}
