//! The real `cafe-server` binary renews its TLS certificate on SIGHUP: new
//! connections get the new one, and a broken renewal is refused (logged)
//! while the last good certificate stays served. A child process, because
//! what is tested is the signal reaching `run_main`'s reload task; the
//! reload itself, with a buzzer open across it, is tested in-process in
//! the end-to-end `tests/it/tls.rs`. Certificates are made at run time
//! (`cafe_testkit::tls`).

#![cfg(unix)]

use cafe_testkit::{
    process::{ServerProcess, clean_command},
    tls::TestPki,
};

/// The name in the certificates: the address the café listens on.
const HOST: &str = "127.0.0.1";

#[tokio::test]
async fn sighup_renews_the_certificate_and_refuses_a_broken_one() {
    let pki = TestPki::new("cafe");
    let first = pki.issue("cafe", &[HOST]);
    let (cert, key) = (
        first.cert.display().to_string(),
        first.key.display().to_string(),
    );
    let cafe = ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--database-url",
            "memory",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        "café open",
    );
    let addr = cafe.addr;
    assert_eq!(pki.served_certificate(addr, HOST).await, first.der);

    // Renewed in place, then SIGHUP.
    let renewed = pki.issue("cafe", &[HOST]);
    cafe.signal("HUP");
    cafe.wait_for_log("SIGHUP: TLS certificate reloaded; new connections get it");
    assert_eq!(pki.served_certificate(addr, HOST).await, renewed.der);

    // A key that is not one: refused, and the renewed certificate stays.
    std::fs::write(&renewed.key, "-----BEGIN PRIVATE KEY-----\nnot base64\n").unwrap();
    cafe.signal("HUP");
    let refused =
        cafe.wait_for_log("SIGHUP: TLS certificate not reloaded; still serving the previous one");
    let error = refused["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("--tls-key"), "{refused}");
    assert_eq!(pki.served_certificate(addr, HOST).await, renewed.der);

    cafe.terminate();
    let clean = tokio::task::spawn_blocking(move || cafe.wait_exit())
        .await
        .unwrap();
    assert!(clean, "a clean exit");
}

#[test]
fn a_missing_certificate_stops_the_cafe_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let output = clean_command(env!("CARGO_BIN_EXE_cafe-server"))
        .args(["--database-url", "memory", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .expect("run cafe-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("certificate (--tls-cert)") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
