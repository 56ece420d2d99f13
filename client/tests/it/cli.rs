//! The real `cafe` binary against a real café started in this process on
//! port 0: what a person sees (text) and what a program reads (`--json`),
//! the exit codes, and the one-line errors.
//!
//! The café runs on the test's tokio runtime; the binary runs as a child
//! process on a blocking thread, so the runtime keeps serving meanwhile.
//!
//! One module per idea: [`commands`] (each command's output and exit
//! code), [`rush`] (rushes and the demo, and their timelines),
//! [`interruptions`] (Ctrl-C, a crash, a restart, a deadline), and
//! [`voice`] (one voice: `--customer`, drink names, the JSON envelope).

mod commands;
mod interruptions;
mod rush;
mod voice;

use std::{net::SocketAddr, process::Output, time::Duration};

use assert_cmd::Command;
use cafe_server::Config;
use cafe_testkit::{TestCafe, config_at_scale};
use serde_json::Value;

/// A café whose medium latte takes 200 ms.
fn fast(baristas: u32) -> Config {
    Config {
        baristas,
        ..config_at_scale(0.005)
    }
}

/// Runs `cafe --server <cafe> args...` and returns its output. The
/// environment's `CAFE_*`, `OTEL_*` and `RUST_LOG` are cleared so they cannot
/// leak in (a developer's collector endpoint would add trace links).
async fn cafe_at(server: &str, args: &[&str]) -> Output {
    let mut command = Command::cargo_bin("cafe").unwrap();
    for key in cafe_testkit::leaky_env() {
        command.env_remove(key);
    }
    command
        .arg("--server")
        .arg(server)
        .args(args)
        .timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn cafe(test_cafe: &TestCafe, args: &[&str]) -> Output {
    cafe_at(&test_cafe.url(), args).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The process failed with `code` and said so in exactly one line on
/// stderr, starting `error: `, with no panic or debug dump.
fn assert_one_line_error(output: &Output, code: u8) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(i32::from(code)), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("Status {"),
        "stderr: {err}"
    );
    err
}

/// Port 0 on 127.0.0.1: any free port.
fn unused_port_zero() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port where nothing listens.
fn unused_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
