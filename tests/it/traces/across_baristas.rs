//! Traces across the barista boundary: a brew retried on another barista
//! is a second brew span saying why, and blocking brews show as requests
//! that start late.

use std::time::Duration;

use cafe_domain::menu::{self};
use cafe_testkit::{
    barista::{barista_config, spawn_barista},
    connect_traced, fast_config, order,
    otlp::{CollectedSpan, Collector, KIND_CLIENT, KIND_SERVER, STATUS_ERROR},
    remote_config, spawn_cafe,
};
use futures::StreamExt;
use grpc_serving::ServerFlags;
use grpc_telemetry::{self as telemetry, LogFormat, TelemetryConfig};
use tracing::Instrument;

use super::{latte_brew_time, telemetry_to, trace_id_of};

#[tokio::test]
async fn a_retry_on_another_barista_is_a_second_brew_span_saying_why() {
    use cafe_domain::proto::v1::OrderStatus;
    let collector = Collector::start();
    let (telemetry, _default) = telemetry_to(collector.endpoint());
    // A latte takes 2 s here: long enough to kill its barista mid-brew.
    let slow = |name: &str| cafe_barista::Config {
        time_scale: menu::TimeScale::new(0.05).unwrap(),
        ..barista_config(name, 1)
    };
    let mut baristas = vec![
        spawn_barista(slow("barista-1")),
        spawn_barista(slow("barista-2")),
    ];
    let urls: Vec<String> = baristas.iter().map(|b| b.url()).collect();
    let cafe = spawn_cafe(remote_config(&urls)).await;
    cafe.wait_for_health(
        tonic_health::pb::health_check_response::ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;
    let mut client = connect_traced(cafe.addr).await;

    let customer = tracing::info_span!("customer");
    let trace_id = trace_id_of(&customer);
    let mut buzzer = client
        .order_with_buzzer(order("Ada", "latte"))
        .instrument(customer.clone())
        .await
        .unwrap()
        .into_inner();
    // Kill whichever barista starts brewing it.
    let first = loop {
        let order = buzzer.next().await.unwrap().unwrap().order.unwrap();
        if order.status == OrderStatus::Brewing as i32 {
            break order.barista;
        }
    };
    let dead = usize::from(!first.starts_with("barista-1/"));
    baristas.remove(dead).kill();
    while let Some(event) = buzzer.next().await {
        event.unwrap();
    }
    drop(customer);

    let spans = collector
        .wait_for(&telemetry, "two brew attempts", |spans| {
            spans
                .iter()
                .filter(|s| s.trace_id == trace_id && s.name == "brew")
                .count()
                == 2
        })
        .await;
    let mut attempts: Vec<&CollectedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.name == "brew")
        .collect();
    attempts.sort_by_key(|s| s.start);
    let (failed, retry) = (attempts[0], attempts[1]);
    // Siblings under the order's call, one after the other.
    assert_eq!(failed.parent_span_id, retry.parent_span_id);
    assert!(failed.end <= retry.start);
    // The first failed, and says so; the second says why it exists.
    assert_eq!(failed.attr("attempt"), Some("1"));
    assert_eq!(failed.attr("barista"), Some(first.as_str()));
    assert_eq!(failed.status_code, STATUS_ERROR);
    assert!(
        failed.events.iter().any(|e| e.contains("went away")),
        "{:?}",
        failed.events
    );
    assert_eq!(retry.attr("attempt"), Some("2"));
    assert_ne!(retry.status_code, STATUS_ERROR);
    let reason = retry.attr("retry.reason").unwrap_or_default();
    assert!(reason.contains(&first), "retry.reason: {reason}");
    // Each attempt has its own gRPC client span under it.
    for attempt in [failed, retry] {
        assert!(
            spans.iter().any(|s| s.parent_span_id == attempt.span_id
                && s.name == "cafe.v1.Barista/Brew"
                && s.kind == KIND_CLIENT),
            "no Brew call under attempt {:?}",
            attempt.attr("attempt")
        );
    }
}

#[tokio::test]
async fn blocking_brews_show_as_requests_that_start_late() {
    // The café on a runtime of its own with ONE worker thread, as
    // `--runtime-workers 1` runs it, reporting to the test's collector; the
    // customers on the test's thread, so they can send while it is stuck.
    let collector = Collector::start();
    let (telemetry, dispatch) = telemetry::build(&TelemetryConfig {
        service_name: "cafe-test",
        log_format: LogFormat::Text,
        default_filter: cafe_testkit::test_console_filter(),
        otlp_endpoint: Some(collector.endpoint()),
    });
    let _default = cafe_testkit::set_thread_default(&dispatch);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start({
            let dispatch = dispatch.clone();
            move || std::mem::forget(cafe_testkit::set_thread_default(&dispatch))
        })
        .enable_all()
        .build()
        .unwrap();
    let config = cafe_server::Config {
        baristas: 2,
        brew_mode: cafe_domain::brewing::BrewMode::Blocking,
        server: ServerFlags {
            ..fast_config().server
        },
        ..fast_config()
    };
    let listener = {
        let _inside = runtime.enter();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        tokio::net::TcpListener::from_std(std_listener).unwrap()
    };
    let app = cafe_server::Application::with_listener(config, listener);
    let addr = app.local_addr();
    runtime.spawn(app.serve(std::future::pending()));
    let client = connect_traced(addr).await;

    // Three customers at once, and a menu reader who comes in while the
    // first latte brews (half a brew later): sent all at once, the four
    // requests may all be read before the first brew blocks the worker, and
    // then none of them would show the wait.
    let brew = latte_brew_time();
    let customer = tracing::info_span!("customers");
    let trace_id = trace_id_of(&customer);
    let orders = ["Ada", "Bo", "Cy"].map(|name| {
        let mut client = client.clone();
        async move {
            client.order_coffee(order(name, "latte")).await.unwrap();
        }
    });
    let mut menu_client = client.clone();
    let menu = async move {
        tokio::time::sleep(brew / 2).await;
        menu_client
            .get_menu(cafe_domain::proto::v1::GetMenuRequest {})
            .await
            .unwrap();
    };
    futures::future::join(futures::future::join_all(orders), menu)
        .instrument(customer.clone())
        .await;
    drop(customer);

    let spans = collector
        .wait_for(&telemetry, "four calls on both sides", |spans| {
            spans
                .iter()
                .filter(|s| s.trace_id == trace_id && s.name.starts_with("cafe.v1.Cafe/"))
                .count()
                == 8
        })
        .await;
    // How long each call waited between leaving the customer and being
    // picked up by the café: the gap between its client and server spans.
    let mut gaps = Vec::new();
    for client_call in spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.kind == KIND_CLIENT)
    {
        let server_call = spans
            .iter()
            .find(|s| s.parent_span_id == client_call.span_id && s.kind == KIND_SERVER)
            .expect("each call has its server span");
        gaps.push((
            client_call.name.clone(),
            Duration::from_nanos(server_call.start.saturating_sub(client_call.start)),
        ));
    }
    eprintln!("blocking: client → server span gaps {gaps:?} (brew {brew:?})");
    // A café that blocks its only worker cannot even start on a request
    // that came in while it brewed: the menu reader, who came in half-way
    // through the first brew, is picked up only when that brew is over (an
    // async café answers a menu in about a millisecond).
    let (_, menu_gap) = gaps
        .iter()
        .find(|(name, _)| name == "cafe.v1.Cafe/GetMenu")
        .expect("the menu call");
    assert!(
        *menu_gap >= brew / 4,
        "the menu call did not wait for the blocking brew: {gaps:?}"
    );
    // And the barista's own `brew` spans show the brews one after another.
    let mut brews: Vec<&CollectedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.name == "brew")
        .collect();
    brews.sort_by_key(|s| s.start);
    assert_eq!(brews.len(), 3);
    for pair in brews.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "one worker, one brew at a time"
        );
    }
    runtime.shutdown_background();
}
