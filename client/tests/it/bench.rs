//! `cafe bench` against a real café on port 0: its counts add up, a full
//! line shows up as RESOURCE_EXHAUSTED, buzzers count only when READY, a
//! closing café's retry hint is honoured, and the binary's `--json` is one
//! object a program can read. Nothing here asserts a speed: that is the
//! benchmark's job (`bench/run`), not a test's.

use std::{process::Output, time::Duration};

use assert_cmd::Command;
use cafe_client::{
    cli::BenchRpc,
    commands::bench::{Bound, Plan, Report, bench},
    connection::Dial,
    error::exit,
};
use cafe_domain::{
    menu::Size,
    proto::v1::{GetStatsRequest, GetStatsResponse},
};
use cafe_server::Config;
use cafe_testkit::{LIMIT, TestCafe, config_at_scale, spawn_cafe};
use serde_json::Value;

/// A café whose medium latte takes `brew`.
fn cafe_config(baristas: u32, brew: Duration) -> Config {
    Config {
        baristas,
        ..config_at_scale(brew.as_secs_f64() / 40.0)
    }
}

fn plan(rpc: BenchRpc, concurrency: usize, bound: Bound) -> Plan {
    Plan {
        rpc,
        concurrency,
        connections: 2,
        bound,
        warmup: Duration::ZERO,
        ramp_up: Duration::ZERO,
        drink: "latte".into(),
        size: Size::Medium,
        timeout: None,
        server_pid: None,
    }
}

async fn run(cafe: &TestCafe, plan: &Plan) -> Report {
    bench(&Dial::plaintext(&cafe.url()), plan, std::future::pending())
        .await
        .expect("the bench runs")
}

/// A run of `plan` in the background, and the way to interrupt it (as
/// Ctrl-C would).
fn interruptible(
    dial: Dial,
    plan: Plan,
) -> (
    tokio::task::JoinHandle<Result<Report, cafe_client::error::ClientError>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (interrupt, interrupted) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        bench(&dial, &plan, async {
            let _ = interrupted.await;
        })
        .await
    });
    (running, interrupt)
}

/// Waits (within [`LIMIT`]) until the café's stats satisfy `enough`.
async fn until_stats(cafe: &mut TestCafe, enough: impl Fn(&GetStatsResponse) -> bool) {
    let reached = async {
        loop {
            let stats = cafe.client.get_stats(GetStatsRequest {}).await.unwrap();
            if enough(&stats.into_inner()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, reached)
        .await
        .expect("the café's stats to get there");
}

/// Every measured call is counted once, under one outcome.
fn assert_counts_add_up(report: &Report) {
    assert_eq!(report.ok + report.errors, report.requests, "{report:#?}");
    assert_eq!(
        report.results.values().sum::<u64>(),
        report.requests,
        "{report:#?}"
    );
    assert_eq!(
        report.results.get("OK").copied().unwrap_or(0),
        report.ok,
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_planned_call_is_counted_at_the_counter_and_with_a_buzzer() {
    let cafe = spawn_cafe(cafe_config(4, Duration::from_millis(20))).await;
    for rpc in [BenchRpc::Counter, BenchRpc::Buzzer, BenchRpc::Menu] {
        let report = run(&cafe, &plan(rpc, 8, Bound::Requests(40))).await;
        assert_counts_add_up(&report);
        // A healthy café with room in its line serves everyone: a buzzer
        // counts as OK only because its last event was READY.
        assert_eq!(report.requests, 40, "{rpc:?}: {report:#?}");
        assert_eq!(report.ok, 40, "{rpc:?}: {report:#?}");
        assert_eq!(report.abandoned, 0);
        assert_eq!(report.concurrency, 8);
        assert_eq!(report.connections, 2);
        let latency = report.latency.expect("latencies of the served calls");
        assert!(latency.p50_ms <= latency.p99_ms && latency.p99_ms <= latency.max_ms);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_run_counts_the_calls_of_its_window_and_abandons_the_rest() {
    let cafe = spawn_cafe(cafe_config(4, Duration::from_millis(20))).await;
    let report = run(
        &cafe,
        &Plan {
            warmup: Duration::from_millis(100),
            ..plan(
                BenchRpc::Counter,
                6,
                Bound::Duration(Duration::from_millis(400)),
            )
        },
    )
    .await;
    assert_counts_add_up(&report);
    // Each worker has at most one call in flight when the window closes.
    assert!(report.abandoned <= 6, "{report:#?}");
    assert_eq!(report.duration_ms, Some(400.0));
    assert!(report.window_ms >= 400.0, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ramp_up_spreads_the_first_orders_over_it() {
    // One barista on a long brew: every order placed stays in the café,
    // so its count says how many workers have made their first call.
    let mut cafe = spawn_cafe(cafe_config(1, Duration::from_secs(60))).await;
    let dial = Dial::plaintext(&cafe.url());
    let ramp_up = Duration::from_secs(2);
    let spread = Plan {
        warmup: ramp_up,
        ramp_up,
        ..plan(BenchRpc::Buzzer, 10, Bound::Duration(LIMIT))
    };
    let started = tokio::time::Instant::now();
    let (running, interrupt) = interruptible(dial, spread);
    until_stats(&mut cafe, |stats| {
        stats.orders_queued + stats.orders_brewing >= 10
    })
    .await;
    let took = started.elapsed();
    // The tenth worker starts 9/10 of the way through the ramp: never
    // sooner (a busy machine can only make it later).
    assert!(
        took >= ramp_up.mul_f64(0.9),
        "all ten ordered after {took:?}"
    );
    interrupt.send(()).unwrap();
    let report = running.await.unwrap().expect("the bench runs");
    assert!(report.interrupted);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_line_is_counted_as_resource_exhausted() {
    // One barista brewing for a second and room for one order in line:
    // of ten customers arriving together, most are refused at once.
    let cafe = spawn_cafe(Config {
        queue_capacity: 1,
        ..cafe_config(1, Duration::from_secs(1))
    })
    .await;
    let report = run(&cafe, &plan(BenchRpc::Counter, 10, Bound::Requests(10))).await;
    assert_counts_add_up(&report);
    assert_eq!(report.requests, 10);
    let refused = report
        .results
        .get("RESOURCE_EXHAUSTED")
        .copied()
        .unwrap_or(0);
    assert!(refused > 0, "{report:#?}");
    assert_eq!(report.ok + refused, 10, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closing_cafe_is_left_alone_as_long_as_its_retry_hint_says() {
    // One barista brewing a 1 s latte, and the other customers in line
    // when the café is told to close: they are all told UNAVAILABLE with
    // a hint, and so is every call sent while it closes.
    let mut cafe = spawn_cafe(cafe_config(1, Duration::from_secs(1))).await;
    let dial = Dial::plaintext(&cafe.url());
    let timed = plan(BenchRpc::Counter, 12, Bound::Duration(LIMIT));
    let (running, interrupt) = interruptible(dial, timed);
    until_stats(&mut cafe, |stats| stats.orders_queued >= 6).await;
    cafe.shutdown_within(LIMIT).await;
    interrupt.send(()).unwrap();
    let report = running.await.unwrap().expect("the bench runs");

    assert_counts_add_up(&report);
    // A worker that sent again at once could be caught by the café's
    // GOAWAY with a call queued in hyper's client: CANCELLED or INTERNAL.
    // Waiting as the hint says, every call ends OK or UNAVAILABLE.
    let others: Vec<_> = report
        .results
        .keys()
        .filter(|&&code| code != "OK" && code != "UNAVAILABLE")
        .collect();
    assert!(others.is_empty(), "{report:#?}");
    assert!(report.retry_hints > 0, "{report:#?}");
    assert!(
        report.retry_hints <= report.results["UNAVAILABLE"],
        "{report:#?}"
    );
}

/// Runs the `cafe` binary against `cafe` with `args` (on a blocking
/// thread, so this runtime keeps serving the café).
async fn cafe_bin(cafe: &TestCafe, args: &[&str]) -> Output {
    let mut command = Command::cargo_bin("cafe").unwrap();
    for key in cafe_testkit::leaky_env() {
        command.env_remove(key);
    }
    command
        .arg("--server")
        .arg(cafe.url())
        .args(args)
        .timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_prints_one_json_object_or_a_short_table() {
    let cafe = spawn_cafe(cafe_config(2, Duration::from_millis(20))).await;
    // The café runs in this test's process, so this process is its pid.
    let pid = std::process::id().to_string();

    let output = cafe_bin(
        &cafe,
        &[
            "--json",
            "bench",
            "--requests",
            "12",
            "--concurrency",
            "3",
            "--server-pid",
            &pid,
        ],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["event"], "bench");
    assert_eq!(report["rpc"], "counter");
    assert_eq!(report["requests"], 12);
    assert_eq!(
        report["ok"].as_u64().unwrap() + report["errors"].as_u64().unwrap(),
        12
    );
    assert_eq!(
        report["server_process"]["pid"].as_u64(),
        Some(u64::from(std::process::id()))
    );
    assert!(report["server_process"]["hwm_kib"].as_u64().unwrap() > 0);
    assert!(report["generator"]["cpu_ms"].is_number());
    assert!(report["latency"]["p99_ms"].is_number());

    let output = cafe_bin(&cafe, &["bench", "-n", "4", "-c", "2"]).await;
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("results     OK 4"), "{table}");
    assert!(table.contains("latency     p50 "), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_server_pid_is_one_line_and_a_usage_error() {
    let cafe = spawn_cafe(cafe_config(1, Duration::from_millis(20))).await;
    // Above the kernel's largest pid (4,194,304): never a process.
    let output = cafe_bin(&cafe, &["bench", "-n", "1", "--server-pid", "99999999"]).await;
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::USAGE)),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read process 99999999"),
        "{stderr}"
    );
}
