//! One trace across three services: the real `cafe` binary (its own
//! process, service `cafe-client`), a café (service `cafe`) and a remote
//! barista (service `barista`), all exporting to one OTLP collector in this
//! test (`cafe_testkit::otlp`).
//!
//! The café runs on the test's current-thread runtime, with a telemetry
//! stack that is the default for this thread only; the barista runs on a
//! runtime of its own whose threads report to a second stack. The CLI is a
//! child process given `OTEL_EXPORTER_OTLP_ENDPOINT`, and it exits as soon
//! as it has printed: its spans arriving at all is the proof that its exit
//! flushes them. Nothing sleeps: `Collector::wait_for_all` flushes the
//! in-process stacks and waits for the spans each test expects.

use std::{
    net::SocketAddr,
    process::Output,
    time::{Duration, Instant},
};

use assert_cmd::Command;
use cafe_server::Config;
use cafe_testkit::{
    barista::{barista_config, spawn_traced_barista},
    config_at_scale, fast_config,
    otlp::{CollectedSpan, Collector, KIND_CLIENT, KIND_INTERNAL, KIND_SERVER, STATUS_ERROR},
    remote_config, spawn_cafe,
};
use grpc_telemetry::{self as telemetry, LogFormat, Telemetry, TelemetryConfig};
use serde_json::Value;
use tonic_health::pb::health_check_response::ServingStatus;
use tracing::dispatcher::DefaultGuard;

/// A telemetry stack for `service` exporting to `endpoint`, not installed.
fn stack(service: &'static str, endpoint: &str) -> (Telemetry, tracing::Dispatch) {
    telemetry::build(&TelemetryConfig {
        service_name: service,
        log_format: LogFormat::Text,
        default_filter: cafe_testkit::test_console_filter(),
        otlp_endpoint: Some(endpoint.to_owned()),
    })
}

/// `stack`, made the default for this thread until the guard drops.
fn stack_here(service: &'static str, endpoint: &str) -> (Telemetry, DefaultGuard) {
    let (telemetry, dispatch) = stack(service, endpoint);
    (telemetry, cafe_testkit::set_thread_default(&dispatch))
}

/// Runs the real `cafe` binary with `args`, exporting to `endpoint` if
/// given, and returns its output and how long the process took. The
/// environment's `CAFE_*`, `OTEL_*` and `RUST_LOG` are cleared first.
async fn cafe_cli(endpoint: Option<&str>, args: &[&str]) -> (Output, Duration) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cafe"));
    for key in cafe_testkit::leaky_env() {
        command.env_remove(key);
    }
    command.args(args);
    if let Some(endpoint) = endpoint {
        command.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    command.timeout(Duration::from_secs(60));
    // On a blocking thread: the café on this runtime keeps serving meanwhile.
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = command.output().unwrap();
        (output, started.elapsed())
    })
    .await
    .unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "cafe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The trace id at the end of a `trace_url` printed by the CLI.
fn trace_id_of(line: &Value) -> String {
    let url = line["trace_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_url in {line}"));
    let (ui, id) = url.rsplit_once("/trace/").unwrap();
    assert_eq!(ui, "http://localhost:16686");
    assert_eq!(id.len(), 32, "{url}");
    id.to_owned()
}

fn in_trace<'a>(spans: &'a [CollectedSpan], trace_id: &str) -> Vec<&'a CollectedSpan> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

/// The one span of the trace from `service` named `name` of `kind`.
fn the<'a>(spans: &[&'a CollectedSpan], service: &str, name: &str, kind: i32) -> &'a CollectedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.service == service && s.name == name && s.kind == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {name} span from {service}, got {found:#?}"
    );
    found[0]
}

fn has(spans: &[&CollectedSpan], service: &str, name: &str, kind: i32) -> bool {
    spans
        .iter()
        .any(|s| s.service == service && s.name == name && s.kind == kind)
}

/// Prints the trace as an indented tree (for the README and for a failing
/// test's output), with each span's start and length relative to the root.
fn print_tree(spans: &[&CollectedSpan]) {
    let start = spans.iter().map(|s| s.start).min().unwrap_or_default();
    fn walk(spans: &[&CollectedSpan], parent: &str, depth: usize, start: u64) {
        let mut children: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == parent)
            .collect();
        children.sort_by_key(|s| s.start);
        for span in children {
            let kind = match span.kind {
                KIND_SERVER => " [server]",
                KIND_CLIENT => " [client]",
                _ => "",
            };
            eprintln!(
                "{:>7.1}ms {:>7.1}ms  {}{} ({}){kind}",
                (span.start - start) as f64 / 1e6,
                span.duration().as_secs_f64() * 1e3,
                "  ".repeat(depth),
                span.name,
                span.service,
            );
            walk(spans, &span.span_id, depth + 1, start);
        }
    }
    walk(spans, "", 0, start);
}

#[tokio::test]
async fn an_order_is_one_trace_across_client_cafe_and_barista() {
    // Arrange: a collector, a barista (service `barista`) and a café
    // (service `cafe`) brewing on it, each exporting there.
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let (barista_telemetry, barista_dispatch) = stack("barista", &endpoint);
    let barista = spawn_traced_barista(barista_config("barista-1", 2), barista_dispatch);
    let (cafe_telemetry, _default) = stack_here("cafe", &endpoint);
    let cafe = spawn_cafe(remote_config(&[barista.url()])).await;
    cafe.wait_for_health(ServingStatus::Serving, Duration::from_secs(10))
        .await;

    // Act: the real CLI orders, and exits as soon as the drink is ready.
    let (output, _) = cafe_cli(
        Some(&endpoint),
        &[
            "--server",
            &cafe.url(),
            "--json",
            "order",
            "latte",
            "--name",
            "Ada",
        ],
    )
    .await;
    let lines = json_lines(&output);
    let trace_id = trace_id_of(&lines[0]);

    // Assert: every hop's spans arrive in that one trace.
    let client_call = "cafe.v1.Cafe/OrderCoffee";
    let barista_call = "cafe.v1.Barista/Brew";
    let spans = collector
        .wait_for_all(
            &[&cafe_telemetry, &barista_telemetry],
            "the order's spans from three services",
            |spans| {
                let trace = in_trace(spans, &trace_id);
                has(&trace, "cafe-client", "cafe order", KIND_INTERNAL)
                    && has(&trace, "cafe-client", client_call, KIND_CLIENT)
                    && has(&trace, "cafe", client_call, KIND_SERVER)
                    && has(&trace, "cafe", "brew", KIND_INTERNAL)
                    && has(&trace, "cafe", barista_call, KIND_CLIENT)
                    && has(&trace, "barista", barista_call, KIND_SERVER)
                    && has(&trace, "barista", "brew", KIND_INTERNAL)
            },
        )
        .await;
    let trace = in_trace(&spans, &trace_id);
    eprintln!("one order, trace {trace_id}:");
    print_tree(&trace);

    // Parent → child, across the three processes:
    // cafe order → OrderCoffee client → OrderCoffee server (the handler's
    // span too) → brew → Brew client → Brew server → the barista's brew
    // handler.
    let root = the(&trace, "cafe-client", "cafe order", KIND_INTERNAL);
    let cli_call = the(&trace, "cafe-client", client_call, KIND_CLIENT);
    let cafe_server = the(&trace, "cafe", client_call, KIND_SERVER);
    let brew = the(&trace, "cafe", "brew", KIND_INTERNAL);
    let brew_client = the(&trace, "cafe", barista_call, KIND_CLIENT);
    let barista_server = the(&trace, "barista", barista_call, KIND_SERVER);
    let barista_handler = the(&trace, "barista", "brew", KIND_INTERNAL);
    assert!(root.parent_span_id.is_empty(), "the command is the root");
    assert_eq!(cli_call.parent_span_id, root.span_id);
    assert_eq!(cafe_server.parent_span_id, cli_call.span_id);
    assert_eq!(brew.parent_span_id, cafe_server.span_id);
    assert_eq!(brew_client.parent_span_id, brew.span_id);
    assert_eq!(barista_server.parent_span_id, brew_client.span_id);
    assert_eq!(barista_handler.parent_span_id, barista_server.span_id);

    // The RPC conventions on the barista hop, on both sides.
    for span in [brew_client, barista_server] {
        assert_eq!(span.attr("rpc.system"), Some("grpc"));
        assert_eq!(span.attr("rpc.service"), Some("cafe.v1.Barista"));
        assert_eq!(span.attr("rpc.method"), Some("Brew"));
        assert_eq!(span.attr("rpc.grpc.status_code"), Some("0"));
        assert_ne!(span.status_code, STATUS_ERROR);
    }
    // The café's brew span says who brewed it, and it was the first try.
    let served = &lines[0]["order"];
    assert_eq!(brew.attr("barista"), served["barista"].as_str());
    assert_eq!(brew.attr("attempt"), Some("1"));
    assert_eq!(brew.attr("order.id"), served["id"].as_str());
    // Time agrees (one machine, one clock): the barista started on the
    // drink after the customer ordered and before they had it.
    assert!(root.start <= barista_server.start && barista_server.start <= root.end);
}

#[tokio::test]
async fn a_rush_shows_a_staircase_when_sequential_and_a_fan_when_concurrent() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let (cafe_telemetry, _default) = stack_here("cafe", &endpoint);
    // As many baristas as customers: the fan is not cut by a queue.
    let cafe = spawn_cafe(Config {
        baristas: 3,
        ..fast_config()
    })
    .await;

    let (output, _) = cafe_cli(
        Some(&endpoint),
        &[
            "--server",
            &cafe.url(),
            "--json",
            "rush",
            "--mode",
            "compare",
            "--customers",
            "3",
        ],
    )
    .await;
    let lines = json_lines(&output);
    let summary = lines.iter().find(|l| l["event"] == "summary").unwrap();
    let trace_id = trace_id_of(summary);

    let spans = collector
        .wait_for_all(&[&cafe_telemetry], "the rush's spans", |spans| {
            let trace = in_trace(spans, &trace_id);
            trace.iter().filter(|s| is_customer(s)).count() == 6
                && trace
                    .iter()
                    .filter(|s| s.name == "cafe.v1.Cafe/OrderCoffee" && s.kind == KIND_SERVER)
                    .count()
                    == 6
                && has(&trace, "cafe-client", "cafe rush", KIND_INTERNAL)
        })
        .await;
    let trace = in_trace(&spans, &trace_id);
    eprintln!("rush --mode compare --customers 3, trace {trace_id}:");
    print_tree(&trace);

    // One root, two runs under it, three customers under each run.
    let root = the(&trace, "cafe-client", "cafe rush", KIND_INTERNAL);
    let customers_of = |run: &str| {
        let run = the(&trace, "cafe-client", run, KIND_INTERNAL);
        assert_eq!(run.parent_span_id, root.span_id);
        let mut customers: Vec<&CollectedSpan> = trace
            .iter()
            .copied()
            .filter(|s| is_customer(s) && s.parent_span_id == run.span_id)
            .collect();
        assert_eq!(customers.len(), 3, "{customers:#?}");
        customers.sort_by_key(|s| s.start);
        customers
    };

    // Sequential: a staircase, each customer starting after the one before
    // was served.
    let sequential = customers_of("sequential");
    for pair in sequential.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "sequential customers must not overlap: {pair:#?}"
        );
    }
    // Concurrent: a fan, every customer in flight at the same moment.
    let concurrent = customers_of("concurrent");
    let last_start = concurrent.iter().map(|s| s.start).max().unwrap();
    let first_end = concurrent.iter().map(|s| s.end).min().unwrap();
    assert!(
        last_start < first_end,
        "concurrent customers must overlap: {concurrent:#?}"
    );
    // And the runs follow each other under the root.
    assert!(sequential.last().unwrap().end <= concurrent[0].start);
}

/// A rush customer's span, named `customer #N` in the trace.
fn is_customer(span: &CollectedSpan) -> bool {
    span.name.starts_with("customer #") && span.attr("customer").is_some()
}

/// An address where nothing listens.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
    // dropped here: connecting is refused from now on
}

#[tokio::test]
async fn without_a_collector_the_cli_keeps_its_speed_and_exits_promptly() {
    let cafe = spawn_cafe(fast_config()).await;
    let order = |endpoint: Option<String>| {
        let server = cafe.url();
        async move {
            let (output, took) = cafe_cli(
                endpoint.as_deref(),
                &["--server", &server, "--json", "order", "latte"],
            )
            .await;
            let waited = json_lines(&output)[0]["waited_ms"].as_f64().unwrap();
            (Duration::from_secs_f64(waited / 1e3), took)
        }
    };

    // Normal: no export at all.
    let (normal_wait, normal_total) = order(None).await;
    // A closed port: every export is refused at once.
    let (closed_wait, closed_total) = order(Some(format!("http://{}", closed_port()))).await;
    // A black hole: a listener that never answers, so the last export at
    // exit runs into its time limit (1 s).
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (hole_wait, hole_total) =
        order(Some(format!("http://{}", black_hole.local_addr().unwrap()))).await;
    eprintln!(
        "order wait / process time: no export {normal_wait:?} / {normal_total:?}; \
         closed port {closed_wait:?} / {closed_total:?}; black hole {hole_wait:?} / {hole_total:?}"
    );

    // The order's latency does not notice the missing collector.
    for wait in [closed_wait, hole_wait] {
        assert!(
            wait < normal_wait + Duration::from_millis(500),
            "an order took {wait:?}, against {normal_wait:?} without export"
        );
    }
    // The process exits promptly after the order: at most the export's
    // time limit (1 s) later, with a generous margin for a loaded machine.
    for (total, wait) in [(closed_total, closed_wait), (hole_total, hole_wait)] {
        assert!(
            total < wait + Duration::from_secs(3),
            "the CLI took {total:?} for an order of {wait:?}"
        );
    }
}

#[tokio::test]
async fn the_cli_sends_its_spans_when_interrupted_and_when_it_fails() {
    use std::io::{BufRead, BufReader};

    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let (cafe_telemetry, _default) = stack_here("cafe", &endpoint);
    let cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.05) // a pot of tea takes 9 s
    })
    .await;

    // Ctrl-C on a buzzer, once it shows brewing.
    let (url, otlp) = (cafe.url(), endpoint.clone());
    let (code, trace_line) = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cafe"))
            .args(["--server", &url, "order", "tea", "--buzzer"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("brewing") {
                break;
            }
        }
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let trace_line = lines
            .map(Result::unwrap)
            .find(|line| line.starts_with("trace: "));
        (child.wait().unwrap().code(), trace_line)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130));
    let trace_line = trace_line.expect("a trace link after Ctrl-C");
    let interrupted = trace_line.rsplit('/').next().unwrap().to_owned();

    // A refused order: exit 5, one line on stderr, and still a trace.
    let (output, _) = cafe_cli(
        Some(&endpoint),
        &["--server", &cafe.url(), "order", "frappe"],
    )
    .await;
    assert_eq!(output.status.code(), Some(5));

    let spans = collector
        .wait_for_all(&[&cafe_telemetry], "the CLI's spans", |spans| {
            let buzzer = in_trace(spans, &interrupted);
            has(&buzzer, "cafe-client", "cafe order", KIND_INTERNAL)
                && has(&buzzer, "cafe-client", "buzzer", KIND_INTERNAL)
                && spans
                    .iter()
                    .any(|s| s.name == "cafe order" && s.attr("order.drink") == Some("frappe"))
        })
        .await;
    // The interrupted buzzer: its span holds the changes it saw.
    let buzzer = the(
        &in_trace(&spans, &interrupted),
        "cafe-client",
        "buzzer",
        KIND_INTERNAL,
    );
    assert!(
        buzzer.events.iter().filter(|e| *e == "buzz").count() >= 2,
        "queued and brewing: {:?}",
        buzzer.events
    );
    // The refused order: its root span failed, with the reason.
    let refused = spans
        .iter()
        .find(|s| s.name == "cafe order" && s.attr("order.drink") == Some("frappe"))
        .unwrap();
    assert_eq!(refused.status_code, STATUS_ERROR);
}
