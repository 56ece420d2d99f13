//! The real `cafe-server` binary, stopped with Ctrl-C (SIGINT), still
//! delivers its last spans: the telemetry guard flushes them after the
//! runtime is gone, on the exit path a person actually takes.
//!
//! The binary runs as a child process (`cafe_testkit::process`): what is
//! tested is `main`'s order of drops, which no in-process test can see.
//! It uses the OTLP collector of `cafe_testkit::otlp`.

#![cfg(unix)]

use std::time::{Duration, Instant};

use cafe_domain::proto::v1::{OrderRequest, cafe_client::CafeClient};
use cafe_testkit::{
    otlp::{Collector, KIND_SERVER},
    process::ServerProcess,
};
use grpc_telemetry::propagation;
use serde_json::Value;

#[tokio::test]
async fn ctrl_c_still_delivers_the_last_spans() {
    let collector = Collector::start();
    let data_dir = tempfile::tempdir().unwrap();
    // An order's usual steps are logged at `debug` (docs/cafe-server.md,
    // "Logs"); this test reads the "order placed" line.
    let cafe = exporting_cafe(
        &data_dir,
        &collector.endpoint(),
        ("RUST_LOG", "info,cafe_server=debug"),
    );
    let address = cafe.addr;

    // One order, through a traced channel (with no subscriber in this test
    // process, the café's server span is the trace's root).
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = CafeClient::new(propagation::traced(channel));
    let response = client
        .order_coffee(OrderRequest {
            customer: "Ada".into(),
            drink: "latte".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let trace_id = propagation::trace_id_from(response.metadata()).expect("x-trace-id");

    // The JSON log line of the order names the same trace.
    let placed = cafe.wait_for_log("order placed");
    assert_eq!(placed["trace_id"], trace_id.as_str(), "{placed}");
    assert!(placed["span_id"].as_str().is_some_and(|id| id.len() == 16));

    // Ctrl-C. The batch processor's schedule (5 s) has not come round: only
    // the guard's flush at exit can deliver the spans.
    let stopped = Instant::now();
    cafe.signal("INT");
    let (status, lines) = tokio::task::spawn_blocking(move || cafe.wait_exit_with_log())
        .await
        .unwrap();
    let took = stopped.elapsed();
    eprintln!("cafe-server exited {status} {took:?} after SIGINT");
    assert!(status.success(), "{status}");
    // Its last word is the telemetry's account: every span exported.
    let account = final_account(&lines);
    assert_eq!(account["dropped"], 0, "{account}");
    assert!(
        account["exported"].as_u64().is_some_and(|n| n > 0),
        "{account}"
    );

    let spans: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|span| span.trace_id == trace_id)
        .collect();
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    for expected in ["cafe.v1.Cafe/OrderCoffee", "queue.wait", "brewing"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let server = spans
        .iter()
        .find(|span| span.kind == KIND_SERVER)
        .expect("the server span");
    assert_eq!(server.service, "cafe");
    assert!(
        server.parent_span_id.is_empty(),
        "no caller context: a root span"
    );
}

#[tokio::test]
async fn a_missing_collector_is_reported_once_and_does_not_delay_exit() {
    // Nothing listens on this port once the listener is dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    // Export every 50 ms, so that the outage spans many failed batches.
    let cafe = exporting_cafe(
        &data_dir,
        &format!("http://{closed}"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    );
    let address = cafe.addr;

    let mut client = CafeClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    // Orders one after the other for over a second: many batches, all failing.
    let started = Instant::now();
    let mut orders = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        client
            .order_coffee(OrderRequest {
                customer: "Ada".into(),
                drink: "espresso".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        orders += 1;
    }

    let stopped = Instant::now();
    cafe.signal("INT");
    let (status, lines) = tokio::task::spawn_blocking(move || cafe.wait_exit_with_log())
        .await
        .unwrap();
    let took = stopped.elapsed();
    eprintln!("{orders} orders; exited {status} {took:?} after SIGINT");
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(3), "exit took {took:?}");

    let warnings: Vec<Value> = lines
        .iter()
        .filter(|line| line["level"] == "WARN" || line["level"] == "ERROR")
        .cloned()
        .collect();
    // The final account counts what the outage lost.
    let account = final_account(&lines);
    assert!(
        account["dropped"].as_u64().is_some_and(|n| n > 0),
        "{account}"
    );
    let outage = saying(&warnings, "cannot export traces");
    assert_eq!(outage.len(), 1, "one outage, one warning: {warnings:#?}");
    assert_eq!(warnings.len(), 1, "nothing else complains: {warnings:#?}");
}

/// The fields of the café's "telemetry stopped" line, the last thing its
/// telemetry says at exit, from its whole log (read to the end of its
/// stderr).
fn final_account(lines: &[Value]) -> &Value {
    let stopped = saying(lines, "telemetry stopped");
    assert_eq!(stopped.len(), 1, "one final account: {stopped:#?}");
    &stopped[0]["fields"]
}

/// The log lines whose message starts with `start`.
fn saying<'a>(lines: &'a [Value], start: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(start))
        })
        .collect()
}

/// The real binary on its default store in `data_dir` (a directory of the
/// test's own), exporting its spans to `endpoint`, with `env` set.
fn exporting_cafe(
    data_dir: &tempfile::TempDir,
    endpoint: &str,
    env: (&str, &str),
) -> ServerProcess {
    let data_dir = data_dir.path().display().to_string();
    ServerProcess::start_with_env(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--data-dir",
            &data_dir,
            "--time-scale",
            "0.005",
            "--otlp-endpoint",
            endpoint,
        ],
        &[env],
        "café open",
    )
}
