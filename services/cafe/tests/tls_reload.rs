//! The real `cafe-server` binary renews its TLS certificate on SIGHUP: new
//! connections get the new one, and a broken renewal is refused (logged)
//! while the last good certificate stays served. A child process, because
//! what is tested is the signal reaching `run_main`'s reload task; the
//! reload itself, with a buzzer open across it, is tested in-process in
//! `tests/tls.rs`. Certificates are made at run time (`cafe_testkit::tls`).

#![cfg(unix)]

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use cafe_testkit::{child_log, tls::TestPki};
use serde_json::Value;

/// The name in the certificates: the address the café listens on.
const HOST: &str = "127.0.0.1";

/// The first log line whose message is `message`, within 10 s.
fn wait_for_log(lines: &mpsc::Receiver<Value>, message: &str) -> Value {
    child_log::wait_for(lines, message, Duration::from_secs(10))
}

/// Sends `signal` (`-HUP`, `-TERM`) to the child.
fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn sighup_renews_the_certificate_and_refuses_a_broken_one() {
    let pki = TestPki::new("cafe");
    let first = pki.issue("cafe", &[HOST]);
    let mut cafe = Command::new(env!("CARGO_BIN_EXE_cafe-server"))
        .args(["--database-url", "memory", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&first.cert)
        .arg("--tls-key")
        .arg(&first.key)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start cafe-server");
    let lines = child_log::json_lines(cafe.stderr.take().unwrap());
    let open = wait_for_log(&lines, "café open");
    let addr: SocketAddr = open["fields"]["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(pki.served_certificate(addr, HOST).await, first.der);

    // Renewed in place, then SIGHUP.
    let renewed = pki.issue("cafe", &[HOST]);
    signal(&cafe, "-HUP");
    wait_for_log(
        &lines,
        "SIGHUP: TLS certificate reloaded; new connections get it",
    );
    assert_eq!(pki.served_certificate(addr, HOST).await, renewed.der);

    // A key that is not one: refused, and the renewed certificate stays.
    std::fs::write(&renewed.key, "-----BEGIN PRIVATE KEY-----\nnot base64\n").unwrap();
    signal(&cafe, "-HUP");
    let refused = wait_for_log(
        &lines,
        "SIGHUP: TLS certificate not reloaded; still serving the previous one",
    );
    let error = refused["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("--tls-key"), "{refused}");
    assert_eq!(pki.served_certificate(addr, HOST).await, renewed.der);

    signal(&cafe, "-TERM");
    let status = tokio::task::spawn_blocking(move || cafe.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_missing_certificate_stops_the_cafe_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let output = Command::new(env!("CARGO_BIN_EXE_cafe-server"))
        .args(["--database-url", "memory", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("run cafe-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("certificate (--tls-cert)") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
