//! The exporter under faults and limits: no collector at all, a collector
//! that goes away, a full queue (every span received or counted as
//! dropped), and the `OTEL_*` sampler variables.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use cafe_testkit::{
    connect_traced, fast_config, order,
    otlp::{Collector, KIND_SERVER},
    spawn_cafe,
};
use grpc_telemetry::{self as telemetry, LogFormat, Telemetry, TelemetryConfig};
use tracing::Instrument;

use super::{has, latte_brew_time, telemetry_to, trace_id_of};

/// An address where nothing listens.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
    // dropped here: connecting is refused from now on
}

#[tokio::test]
async fn without_a_collector_orders_keep_their_speed_and_exit_is_prompt() {
    // Two kinds of missing collector: a closed port (refused at once) and a
    // black hole (a listener nobody accepts from: the connection opens,
    // then nothing answers until the export times out).
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let brew = latte_brew_time();
    for (what, addr) in [
        ("closed port", closed_port()),
        ("black hole", black_hole.local_addr().unwrap()),
    ] {
        let (telemetry, default) = telemetry_to(format!("http://{addr}"));
        let cafe = spawn_cafe(fast_config()).await;
        let mut client = connect_traced(cafe.addr).await;

        for _ in 0..3 {
            let started = Instant::now();
            client.order_coffee(order("Ada", "latte")).await.unwrap();
            let took = started.elapsed();
            eprintln!("{what}: order took {took:?} (brew {brew:?})");
            // Exporting never sits in the request's path: an export to the
            // black hole takes a whole second, an order a fifth of that.
            assert!(
                took < brew + Duration::from_millis(700),
                "{what}: an order took {took:?}"
            );
        }
        cafe.shutdown_within(Duration::from_secs(5)).await;

        // The guard flushes what is left (a few spans) and gives up quickly.
        drop(default);
        let started = Instant::now();
        telemetry.shutdown();
        let took = started.elapsed();
        eprintln!("{what}: telemetry shutdown took {took:?}");
        assert!(
            took < Duration::from_millis(2500),
            "{what}: shutdown took {took:?}"
        );
    }

    // The exporter did try the black hole (so the test above was not
    // passing because nothing was exported at all).
    black_hole.set_nonblocking(true).unwrap();
    let black_hole = tokio::net::TcpListener::from_std(black_hole).unwrap();
    tokio::time::timeout(Duration::from_secs(5), black_hole.accept())
        .await
        .expect("the exporter should have connected to the black hole")
        .unwrap();
}

#[tokio::test]
async fn a_collector_that_goes_away_costs_nothing() {
    let collector = Collector::start();
    let (telemetry, _default) = telemetry_to(collector.endpoint());
    let cafe = spawn_cafe(fast_config()).await;
    let mut client = connect_traced(cafe.addr).await;
    let brew = latte_brew_time();

    // Traces flow while the collector is there...
    let customer = tracing::info_span!("customer");
    let trace_id = trace_id_of(&customer);
    client
        .order_coffee(order("Ada", "latte"))
        .instrument(customer)
        .await
        .unwrap();
    collector
        .wait_for(&telemetry, "the first order's server span", |spans| {
            has(spans, &trace_id, "cafe.v1.Cafe/OrderCoffee", KIND_SERVER)
        })
        .await;

    // ...then it goes away, mid-run.
    drop(collector);
    for _ in 0..3 {
        let started = Instant::now();
        client.order_coffee(order("Bo", "latte")).await.unwrap();
        let took = started.elapsed();
        assert!(
            took < brew + Duration::from_millis(700),
            "an order took {took:?}"
        );

        // An export to nowhere gives up within its time limit (1 s).
        let started = Instant::now();
        telemetry.flush();
        let flushed = started.elapsed();
        eprintln!("collector gone: order {took:?} (brew {brew:?}), flush {flushed:?}");
        assert!(
            flushed < Duration::from_millis(2500),
            "a flush took {flushed:?}"
        );
    }
    let started = Instant::now();
    telemetry.shutdown();
    let took = started.elapsed();
    eprintln!("collector gone: telemetry shutdown took {took:?}");
    assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
}

/// A telemetry stack exporting to `endpoint` with the `OTEL_*` variables
/// `vars` (and no others), not installed.
fn stack_with(endpoint: String, vars: &[(&str, &str)]) -> (Telemetry, tracing::Dispatch) {
    let vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    telemetry::build_with_env(
        &TelemetryConfig {
            service_name: "cafe-test",
            log_format: LogFormat::Text,
            default_filter: cafe_testkit::test_console_filter(),
            otlp_endpoint: Some(endpoint),
        },
        |name| vars.get(name).cloned(),
    )
}

/// `spans` spans, one after the other, as fast as they come.
fn burst(dispatch: &tracing::Dispatch, spans: u64) {
    tracing::dispatcher::with_default(dispatch, || {
        for n in 0..spans {
            tracing::info_span!("burst", n).in_scope(|| {});
        }
    });
}

#[tokio::test]
async fn spans_dropped_by_a_full_queue_are_counted_and_nothing_else_is_lost() {
    // A collector that holds every export until resumed: the first batch
    // waits on the wire, the queue fills, and what arrives then is dropped,
    // however fast each side runs.
    let collector = Collector::start();
    collector.pause();
    let tiny_queue = [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ("OTEL_BSP_MAX_CONCURRENT_EXPORTS", "1"),
        // Far longer than the test: no export gives up while paused.
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
    ];
    let (telemetry, dispatch) = stack_with(collector.endpoint(), &tiny_queue);
    let before = telemetry::spans_dropped();
    burst(&dispatch, 100);

    // At most 16 got in: 8 queued, 4 on the wire, 4 waiting for the wire.
    let counts = telemetry.span_counts();
    assert!(
        counts.dropped_queue_full >= 84,
        "dropped {} of 100",
        counts.dropped_queue_full
    );
    assert_eq!(counts.exported, 0, "nothing answered yet");

    collector.resume();
    let counts = telemetry.shutdown();
    let received = collector.received();
    eprintln!("tiny queue: {counts:?}, collector received {received}");
    // Every span is accounted for: received, or counted as dropped.
    assert_eq!(counts.exported, received);
    assert_eq!(counts.lost_in_export, 0);
    assert_eq!(received + counts.dropped(), 100);
    assert!(
        received >= 8,
        "the queue's spans were delivered: {received}"
    );
    // The process-wide count (a benchmark's) includes ours.
    assert!(telemetry::spans_dropped() - before >= counts.dropped());

    // The same burst with the default queue: nothing dropped.
    let collector = Collector::start();
    collector.pause();
    let (telemetry, dispatch) = stack_with(
        collector.endpoint(),
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "60000")],
    );
    burst(&dispatch, 100);
    assert_eq!(telemetry.span_counts().dropped(), 0);
    collector.resume();
    let counts = telemetry.shutdown();
    assert_eq!((counts.exported, collector.received()), (100, 100));
}

#[tokio::test]
async fn the_headers_variable_goes_with_every_export() {
    let collector = Collector::start();
    let (telemetry, dispatch) = stack_with(
        collector.endpoint(),
        &[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=s3cr%3Dt,x-team=cafe",
        )],
    );
    burst(&dispatch, 3);
    let counts = telemetry.shutdown();
    assert_eq!((counts.exported, collector.received()), (3, 3));
    assert_eq!(
        collector.last_header("x-api-key").as_deref(),
        Some("s3cr=t")
    );
    assert_eq!(collector.last_header("x-team").as_deref(), Some("cafe"));
}

#[tokio::test]
async fn the_sampler_variables_are_honoured() {
    let collector = Collector::start();
    let (telemetry, dispatch) = stack_with(
        collector.endpoint(),
        &[("OTEL_TRACES_SAMPLER", "always_off")],
    );
    burst(&dispatch, 20);
    let counts = telemetry.shutdown();
    assert_eq!(counts, telemetry::SpanCounts::default(), "nothing recorded");
    assert_eq!(collector.received(), 0);

    // A ratio of 0.5: about half of 200 root spans, each its own trace.
    let (telemetry, dispatch) = stack_with(
        collector.endpoint(),
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ],
    );
    burst(&dispatch, 200);
    let counts = telemetry.shutdown();
    eprintln!("ratio 0.5: {counts:?}");
    assert_eq!(counts.dropped(), 0);
    assert!(
        (40..=160).contains(&counts.exported),
        "{} of 200 sampled",
        counts.exported
    );
    assert_eq!(collector.received(), counts.exported);
}
