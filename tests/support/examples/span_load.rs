//! How many spans survive a rush, and what a span costs: a load generator
//! for the telemetry pipeline alone (tracing → OpenTelemetry layer → batch
//! queue → OTLP/gRPC → the in-test collector), without a café in the way.
//!
//! Each "order" makes the spans one counter order makes at the café with a
//! remote barista: the server call span (with the handler's attributes),
//! `queue.wait`, `brew`, the `Brew` client call, `brewing` and `buzzer`:
//! six spans, with the café's attributes.
//!
//! ```text
//! # Spans dropped at 10,000 orders/s for 10 s, with the SDK's defaults and with ours:
//! cargo run --release -p cafe-testkit --example span_load -- load --preset sdk --rate 10000 --seconds 10
//! cargo run --release -p cafe-testkit --example span_load -- load --preset cafe --rate 10000 --seconds 10
//! # CPU per span on the thread that makes it, layer off / on:
//! cargo run --release -p cafe-testkit --example span_load -- cost --orders 200000
//! ```
//!
//! `OTEL_BSP_*` variables in the environment override the preset. Figures
//! vary with the machine's load: compare runs made side by side. For counts
//! that load does not disturb, run one cost mode (`--only 0..=3`) under
//! `valgrind --tool=callgrind --separate-threads=yes` at two `--orders`
//! and divide the difference in instructions of the main thread. (The cost
//! loop makes spans far faster than any rush, so the exporting mode drops
//! spans: that is expected there.)

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use cafe_testkit::otlp::Collector;
use grpc_telemetry::{self as telemetry, LogFormat, Telemetry, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use tracing::Level;
use tracing_subscriber::{Layer, filter::Targets, layer::SubscriberExt};

/// Spans made by [`one_order`].
const SPANS_PER_ORDER: u64 = 6;

/// The spans of one counter order with a remote barista, as the café makes
/// them (the same names, kinds and attributes; no time passes inside).
fn one_order(n: u64) {
    let id = format!("ord-{n:012x}");
    let server = tracing::span!(
        target: "otel::tracing",
        Level::TRACE,
        "GRPC request",
        otel.name = "cafe.v1.Cafe/OrderCoffee",
        otel.kind = "Server",
        rpc.system = "grpc",
        rpc.service = "cafe.v1.Cafe",
        rpc.method = "OrderCoffee",
        rpc.grpc.status_code = 0,
        server.address = "127.0.0.1",
        server.port = 50051,
        http.user_agent = "tonic/0.14.9",
        order.id = %id,
        order.drink = "latte",
        order.size = "medium",
        customer = "Ada",
        queue.position = 1,
        barista = "barista-1/Ana",
    );
    let _server = server.enter();
    tracing::info_span!("queue.wait", order.id = %id).in_scope(|| {});
    tracing::info_span!("brew", order.id = %id, barista = "barista-1/Ana", attempt = 1, replica = "barista-1")
        .in_scope(|| {
            tracing::span!(
                target: "otel::tracing",
                Level::TRACE,
                "GRPC request",
                otel.name = "cafe.v1.Barista/Brew",
                otel.kind = "Client",
                rpc.system = "grpc",
                rpc.service = "cafe.v1.Barista",
                rpc.method = "Brew",
                rpc.grpc.status_code = 0,
                server.address = "127.0.0.1",
                server.port = 50061,
                http.user_agent = "tonic/0.14.9",
            )
            .in_scope(|| {});
        });
    tracing::info_span!("brewing", order.id = %id, barista = "barista-1/Ana").in_scope(|| {});
    tracing::info_span!("buzzer", order.id = %id, customer = "Ada").in_scope(|| {});
}

/// The CPU time this thread has used (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// The CPU time the whole process has used (`/proc/self/stat`, in ticks of
/// 10 ms on Linux).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU time per thread name, for the threads alive now (Linux).
fn threads_cpu() -> Vec<(String, Duration)> {
    let mut by_name: HashMap<String, Duration> = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let cpu = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
            .map_or(Duration::ZERO, Duration::from_nanos);
        *by_name.entry(name.trim().to_owned()).or_default() += cpu;
    }
    let mut threads: Vec<_> = by_name.into_iter().collect();
    threads.sort_by_key(|(_, cpu)| std::cmp::Reverse(*cpu));
    threads
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].parse().ok())
        .unwrap_or(default)
}

fn config(endpoint: Option<String>, console: &'static str) -> TelemetryConfig {
    TelemetryConfig {
        service_name: "span-load",
        log_format: LogFormat::Text,
        default_filter: console,
        otlp_endpoint: endpoint,
    }
}

/// The variables of a preset, then the environment's `OTEL_BSP_*` over them.
fn variables(preset: &str) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = match preset {
        // The SDK's own defaults, which the café used before.
        "sdk" => [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "2048"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5000"),
            ("OTEL_BSP_MAX_CONCURRENT_EXPORTS", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        _ => HashMap::new(),
    };
    for (name, value) in std::env::vars() {
        if name.starts_with("OTEL_BSP_") {
            vars.insert(name, value);
        }
    }
    vars
}

/// `rate` orders/s for `seconds` on `threads` threads, against a counting
/// collector; then the books.
fn load(args: &[String]) {
    let rate: f64 = arg(args, "--rate", 10_000.0);
    let seconds: f64 = arg(args, "--seconds", 10.0);
    let threads: usize = arg(args, "--threads", 2);
    let preset: String = arg(args, "--preset", "cafe".to_owned());
    let vars = variables(&preset);
    let collector = Collector::counting();
    let (telemetry, dispatch) =
        telemetry::build_with_env(&config(Some(collector.endpoint()), "warn"), |name| {
            vars.get(name).cloned()
        });
    let settings = telemetry::ExportSettings::from_lookup(|name| vars.get(name).cloned());
    eprintln!(
        "preset {preset}: queue {}, batch {}, concurrent exports {}, delay {:?}",
        settings.max_queue_size,
        settings.max_export_batch_size,
        settings.max_concurrent_exports,
        settings.scheduled_delay
    );

    let cpu_before = process_cpu();
    let started = Instant::now();
    let per_thread = rate / threads as f64;
    let orders: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let dispatch = dispatch.clone();
                scope.spawn(move || {
                    let _default = tracing::dispatcher::set_default(&dispatch);
                    let mut made = 0u64;
                    let end = started + Duration::from_secs_f64(seconds);
                    // Every millisecond, catch up with the schedule: bursts
                    // as a real rush has them.
                    loop {
                        let now = Instant::now();
                        if now >= end {
                            break;
                        }
                        let due = (now - started).as_secs_f64() * per_thread;
                        while (made as f64) < due {
                            one_order(made * threads as u64 + t as u64);
                            made += 1;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    made
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let produced_for = started.elapsed();
    // The producers have ended; the pipeline's threads are still there.
    let pipeline: Vec<String> = threads_cpu()
        .into_iter()
        .filter(|(_, cpu)| *cpu > Duration::from_millis(10))
        .map(|(name, cpu)| format!("{name} {cpu:.2?}"))
        .collect();
    drop(dispatch);
    // What the rush itself cost, before the backlog is sent.
    let during = telemetry.span_counts();
    // Send the backlog (a flush waits up to 5 s per call), then stop:
    // every span is exported, dropped or lost by now.
    let drain_started = Instant::now();
    telemetry.flush();
    let counts = telemetry.shutdown();
    let drain_took = drain_started.elapsed();
    let cpu = process_cpu() - cpu_before;
    let made = orders * SPANS_PER_ORDER;
    let received = collector.received();
    println!(
        "{preset}: {orders} orders ({:.0}/s) = {made} spans in {produced_for:.2?}; \
         during the rush: dropped {} (queue full {}, lost in export {}); \
         in all: exported {} (collector received {received}), dropped {}; \
         largest request {} KiB; process CPU {cpu:.2?}; backlog sent in {drain_took:.2?}",
        orders as f64 / produced_for.as_secs_f64(),
        during.dropped(),
        during.dropped_queue_full,
        during.lost_in_export,
        counts.exported,
        counts.dropped(),
        collector.largest_request() / 1024,
    );
    println!(
        "  CPU by thread (pipeline, during the rush): {}",
        pipeline.join(", ")
    );
    let dropped = counts.dropped();
    assert_eq!(
        received + dropped,
        made,
        "every span is received or counted as dropped"
    );
}

/// A telemetry stack to measure: its guard (if it has one) and subscriber.
type Stack = (Option<Telemetry>, tracing::Dispatch);

/// A named way to build a [`Stack`].
type Mode<'a> = (&'static str, Box<dyn Fn() -> Stack + 'a>);

/// CPU per span on the thread that makes the spans.
fn cost(args: &[String]) {
    let orders: u64 = arg(args, "--orders", 200_000);
    let collector = Collector::counting();
    let modes: [Mode<'_>; 4] = [
        (
            "no export, RUST_LOG=off",
            Box::new(|| {
                let (t, d) = telemetry::build_with_env(&config(None, "off"), |_| None);
                (Some(t), d)
            }),
        ),
        (
            "no export, RUST_LOG=info",
            Box::new(|| {
                let (t, d) = telemetry::build_with_env(&config(None, "info"), |_| None);
                (Some(t), d)
            }),
        ),
        (
            "no export, layer on (before)",
            Box::new(|| {
                // What `telemetry::build` did before without an endpoint:
                // the OpenTelemetry layer with a provider that exports
                // nothing, beside the console at `info`.
                let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
                let otel = tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("cafe"))
                    .with_filter(
                        Targets::new()
                            .with_default(tracing_subscriber::filter::LevelFilter::INFO)
                            .with_targets(telemetry::OTEL_FILTER_DIRECTIVES.iter().copied()),
                    );
                let console = tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(tracing_subscriber::EnvFilter::new("info"));
                let dispatch =
                    tracing::Dispatch::new(tracing_subscriber::registry().with(console).with(otel));
                (None, dispatch)
            }),
        ),
        (
            "export, RUST_LOG=info",
            Box::new(|| {
                let (t, d) =
                    telemetry::build_with_env(&config(Some(collector.endpoint()), "info"), |_| {
                        None
                    });
                (Some(t), d)
            }),
        ),
    ];
    // `--only N`: one mode (e.g. to run each under callgrind on its own).
    let only: Option<usize> = args
        .windows(2)
        .find(|pair| pair[0] == "--only")
        .and_then(|pair| pair[1].parse().ok());
    for (i, (name, make)) in modes.into_iter().enumerate() {
        if only.is_some_and(|only| only != i) {
            continue;
        }
        let (telemetry, dispatch) = make();
        let cpu = tracing::dispatcher::with_default(&dispatch, || {
            // Warm up, then measure.
            for n in 0..orders / 10 {
                one_order(n);
            }
            let before = thread_cpu();
            for n in 0..orders {
                one_order(n);
            }
            thread_cpu() - before
        });
        let per_span = cpu.as_nanos() as f64 / (orders * SPANS_PER_ORDER) as f64;
        let dropped = telemetry.as_ref().map(|t| t.span_counts().dropped());
        drop(dispatch);
        if let Some(telemetry) = telemetry {
            telemetry.shutdown();
        }
        println!(
            "{name:32} {per_span:8.0} ns CPU per span ({:.1} µs per order){}",
            per_span * SPANS_PER_ORDER as f64 / 1e3,
            dropped.map_or(String::new(), |d| format!(", {d} dropped"))
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("load") => load(&args),
        Some("cost") => cost(&args),
        _ => eprintln!("usage: span_load load|cost [options] (see the file's docs)"),
    }
}
