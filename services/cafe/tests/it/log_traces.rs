//! Every log line of a call names the call's trace: the real `cafe-server`
//! with JSON logs at `debug`, called on each path (the counter, a buzzer,
//! the board, a refused order, a failed brew) by a caller sending its own
//! `traceparent`. Each line logged inside a span must carry a `trace_id`,
//! and it must be one of the callers'; each path that logs must have logged
//! under its own. (Lines outside any span, such as startup, name no call.)

#![cfg(unix)]

use std::{collections::BTreeSet, time::Duration};

use cafe_barista::Config;
use cafe_domain::proto::v1::{CancelOrderRequest, OrderRequest, WatchBoardRequest};
use cafe_testkit::{
    LIMIT,
    barista::{barista_config, spawn_barista},
    drain, order,
    process::ServerProcess,
};
use tonic::{Request, metadata::MetadataValue};

/// A request sent as part of trace `trace_id` (32 hex digits), sampled.
fn in_trace<T>(message: T, trace_id: &str) -> Request<T> {
    let mut request = Request::new(message);
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    request
        .metadata_mut()
        .insert("traceparent", MetadataValue::try_from(traceparent).unwrap());
    request
}

/// The trace ids the lines logged in a span name, after asserting the
/// rule: each such line names a trace, one of `ours` (the callers'), and
/// there is at least one.
fn traces_named<'a>(lines: &'a [serde_json::Value], ours: &[&str]) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for line in lines.iter().filter(|line| line.get("span").is_some()) {
        let trace_id = line["trace_id"].as_str().unwrap_or_else(|| {
            panic!("a line logged in a span names no trace: {line}");
        });
        assert!(
            ours.contains(&trace_id),
            "a line names a trace no caller sent: {line}"
        );
        seen.insert(trace_id);
    }
    assert!(!seen.is_empty(), "no line was logged in a span");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_of_a_call_carries_its_trace_id_on_every_path() {
    // Every other brew spoiled (the second, the fourth…): the failed-brew
    // path logs a warning in the brew span.
    let cafe = ServerProcess::start_with_env(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--database-url",
            "memory",
            "--time-scale",
            "0.001",
            "--faults",
            "flaky-barista=0.5",
        ],
        &[("RUST_LOG", "debug,h2=info,hyper=info,tower=info,sqlx=info")],
        "café open",
    );
    let mut client = cafe.client().await;
    let counter = "11111111111111111111111111111111";
    let buzzer = "22222222222222222222222222222222";
    let board = "33333333333333333333333333333333";
    let refused = "44444444444444444444444444444444";
    let failed = "55555555555555555555555555555555";

    let mut watch = client
        .watch_board(in_trace(WatchBoardRequest {}, board))
        .await
        .expect("the board")
        .into_inner();
    client
        .order_coffee(in_trace(order("Ada", "espresso"), counter))
        .await
        .expect("a counter order");
    // The board shows changes: the order just made is one.
    tokio::time::timeout(LIMIT, watch.message())
        .await
        .expect("a board event in time")
        .expect("a board event");
    // The second brew: spoiled.
    client
        .order_coffee(in_trace(order("Dee", "espresso"), failed))
        .await
        .expect_err("a spoiled brew");
    let events = client
        .order_with_buzzer(in_trace(order("Ben", "espresso"), buzzer))
        .await
        .expect("a buzzer")
        .into_inner();
    drain(events).await;
    let bad = OrderRequest {
        drink: "frappuccino".into(),
        ..order("Cy", "espresso")
    };
    client
        .order_coffee(in_trace(bad, refused))
        .await
        .expect_err("no such drink");
    // The board stream is dropped here, its end logged in its span.
    drop(watch);
    tokio::time::sleep(Duration::from_millis(100)).await;

    cafe.terminate();
    let (_, lines) = cafe.wait_exit_with_log();
    let seen = traces_named(&lines, &[counter, buzzer, board, refused, failed]);
    // A refused order and the board log nothing of their own (the answer
    // says it all), so any line of theirs is only held to the rule above;
    // each of the others logs its order's progress.
    for (path, trace_id) in [
        ("counter", counter),
        ("buzzer", buzzer),
        ("failed brew", failed),
    ] {
        assert!(
            seen.contains(trace_id),
            "no line of the {path} call names its trace {trace_id}"
        );
    }
}

/// The same rule for an order brewed on a remote barista (`cafe-barista`,
/// here in the test's process): the dispatcher's lines (a spoiled brew and
/// its retry, a brew stream dropped when the customer cancels) name the
/// order's trace too, with nothing exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_dispatchers_log_lines_carry_the_orders_trace_id() {
    // Every other brew spoiled at the barista (the second, the fourth…):
    // the second order's first brew is, and it is brewed again.
    let barista = spawn_barista(Config {
        faults: "flaky-barista=0.5".parse().unwrap(),
        ..barista_config("remote", 2)
    });
    let endpoint = format!("http://{}", barista.addr);
    let cafe = ServerProcess::start_with_env(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--database-url",
            "memory",
            "--time-scale",
            "0.001",
            "--barista-endpoint",
            &endpoint,
        ],
        &[("RUST_LOG", "debug,h2=info,hyper=info,tower=info,sqlx=info")],
        "café open",
    );
    let mut client = cafe.client().await;
    let spoiled = "66666666666666666666666666666666";
    let cancelled = "77777777777777777777777777777777";

    // Until the café has found its barista, orders are refused; the first
    // brewed is the barista's first (not spoiled), the next its second.
    let found = tokio::time::timeout(LIMIT, async {
        while let Err(refused) = client
            .order_coffee(in_trace(order("Ada", "espresso"), spoiled))
            .await
        {
            assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    found.await.expect("the café finds its barista");
    client
        .order_coffee(in_trace(order("Ada", "espresso"), spoiled))
        .await
        .expect("brewed again after the spoiled brew");
    // A latte takes 40 s on the menu, 40 ms at this scale: long enough to
    // be cancelled while it brews.
    let mut latte = order("Ben", "latte");
    latte.request_id = "slow-latte".into();
    let mut buzzer = client
        .order_with_buzzer(in_trace(latte, cancelled))
        .await
        .expect("a buzzer")
        .into_inner();
    let ticket = buzzer.message().await.unwrap().expect("the ticket");
    let order = ticket.order.expect("the ticket's order");
    client
        .cancel_order(in_trace(
            CancelOrderRequest {
                order_id: order.id,
                claim_token: ticket.claim_token,
            },
            cancelled,
        ))
        .await
        .expect("cancelled");
    drain(buzzer).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    cafe.terminate();
    let (_, lines) = cafe.wait_exit_with_log();
    let seen = traces_named(&lines, &[spoiled, cancelled]);
    assert!(
        lines.iter().any(|line| line["fields"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("spoiled"))
            && line["trace_id"] == spoiled),
        "the spoiled brew's warning names its order's trace"
    );
    assert!(
        seen.contains(cancelled),
        "no line of the cancelled order names its trace"
    );
}
