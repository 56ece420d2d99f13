//! Traces, end to end: a traced client, a real café and a real OTLP
//! collector (see `cafe_testkit::otlp`), all in this process.
//!
//! How each test gets a telemetry stack of its own: the global subscriber
//! can be installed once per process, so instead each test builds one with
//! [`telemetry::build`] and makes it the default *for its thread*
//! (`tracing::dispatcher::set_default`). `#[tokio::test]` runs on a
//! current-thread runtime, so the café's tasks, the client and every span
//! they open live on that thread and report to that test's collector. Tests
//! run in parallel without seeing each other's spans.
//!
//! Spans are exported in batches; `Collector::wait_for` flushes and waits
//! for the spans a test expects (no sleeps).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use cafe_domain::{
    menu::{self, Size},
    proto::v1::{GetOrderRequest, WatchBoardRequest},
};
use cafe_testkit::{
    barista::{barista_config, spawn_barista},
    connect_traced, fast_config, order,
    otlp::{CollectedSpan, Collector, KIND_CLIENT, KIND_INTERNAL, KIND_SERVER, STATUS_ERROR},
    remote_config, spawn_cafe,
};
use futures::StreamExt;
use grpc_serving::ServerFlags;
use grpc_telemetry::{self as telemetry, LogFormat, Telemetry, TelemetryConfig, propagation};
use opentelemetry::trace::TraceContextExt;
use tracing::{Instrument, dispatcher::DefaultGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A telemetry stack exporting to `endpoint`, the default for this thread
/// until the returned guard is dropped.
fn telemetry_to(endpoint: String) -> (Telemetry, DefaultGuard) {
    let (telemetry, dispatch) = telemetry::build(&TelemetryConfig {
        service_name: "cafe-test",
        log_format: LogFormat::Text,
        default_filter: cafe_testkit::test_console_filter(),
        otlp_endpoint: Some(endpoint),
    });
    (telemetry, tracing::dispatcher::set_default(&dispatch))
}

/// A medium latte's brew time in the fast test café.
fn latte_brew_time() -> Duration {
    menu::find("latte")
        .unwrap()
        .brew_time_for(Size::Medium, fast_config().time_scale)
}

/// The one span of `trace_id` named `name` (and of `kind`, if given).
fn the<'a>(
    spans: &'a [CollectedSpan],
    trace_id: &str,
    name: &str,
    kind: Option<i32>,
) -> &'a CollectedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.name == name && kind.is_none_or(|k| s.kind == k))
        .collect();
    assert_eq!(found.len(), 1, "expected one {name} span, got {found:#?}");
    found[0]
}

fn has(spans: &[CollectedSpan], trace_id: &str, name: &str, kind: i32) -> bool {
    spans
        .iter()
        .any(|s| s.trace_id == trace_id && s.name == name && s.kind == kind)
}

fn trace_id_of(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

#[tokio::test]
async fn an_order_is_one_trace_from_customer_to_barista_phases() {
    let collector = Collector::start();
    let (telemetry, _default) = telemetry_to(collector.endpoint());
    let cafe = spawn_cafe(fast_config()).await;
    let mut client = connect_traced(cafe.addr).await;

    // Act: the customer orders inside a span of their own.
    let customer = tracing::info_span!("customer");
    let trace_id = trace_id_of(&customer);
    let response = client
        .order_coffee(order("Ada", "latte"))
        .instrument(customer.clone())
        .await
        .unwrap();
    drop(customer);

    // The café answers with the trace id the customer started.
    assert_eq!(
        propagation::trace_id_from(response.metadata()).as_deref(),
        Some(trace_id.as_str())
    );
    let order_id = response.into_inner().order.unwrap().id;

    let call = "cafe.v1.Cafe/OrderCoffee";
    let spans = collector
        .wait_for(&telemetry, "the order's spans", |spans| {
            ["customer", "order_coffee", "queue.wait", "brewing"]
                .iter()
                .all(|name| has(spans, &trace_id, name, KIND_INTERNAL))
                && has(spans, &trace_id, call, KIND_CLIENT)
                && has(spans, &trace_id, call, KIND_SERVER)
        })
        .await;

    // One trace, parent to child: customer → client call → server call →
    // handler → (queue.wait, brewing).
    let customer = the(&spans, &trace_id, "customer", None);
    let client_call = the(&spans, &trace_id, call, Some(KIND_CLIENT));
    let server_call = the(&spans, &trace_id, call, Some(KIND_SERVER));
    let handler = the(&spans, &trace_id, "order_coffee", None);
    let queued = the(&spans, &trace_id, "queue.wait", None);
    let brewing = the(&spans, &trace_id, "brewing", None);
    assert_eq!(client_call.parent_span_id, customer.span_id);
    assert_eq!(server_call.parent_span_id, client_call.span_id);
    assert_eq!(handler.parent_span_id, server_call.span_id);
    assert_eq!(queued.parent_span_id, handler.span_id);
    assert_eq!(brewing.parent_span_id, handler.span_id);
    assert!(
        queued.end <= brewing.start,
        "the queue wait ends before brewing starts"
    );

    // The RPC semantic conventions, on both sides.
    for span in [client_call, server_call] {
        assert_eq!(span.attr("rpc.system"), Some("grpc"));
        assert_eq!(span.attr("rpc.service"), Some("cafe.v1.Cafe"));
        assert_eq!(span.attr("rpc.method"), Some("OrderCoffee"));
        assert_eq!(span.attr("rpc.grpc.status_code"), Some("0"));
        assert_ne!(span.status_code, STATUS_ERROR);
    }
    // What the order is.
    assert_eq!(handler.attr("order.id"), Some(order_id.as_str()));
    assert_eq!(handler.attr("order.drink"), Some("latte"));
    assert_eq!(handler.attr("order.size"), Some("medium"));
    assert_eq!(handler.attr("customer"), Some("Ada"));
    assert_eq!(handler.attr("queue.position"), Some("1"));
    assert_eq!(handler.attr("barista"), brewing.attr("barista"));
    assert!(!brewing.attr("barista").unwrap_or_default().is_empty());
    assert!(brewing.duration() >= latte_brew_time().mul_f64(0.9));

    // The embedded barista's own span for this brew: run by another task,
    // joined to the order's trace under the handler.
    let brew = the(&spans, &trace_id, "brew", Some(KIND_INTERNAL));
    assert_eq!(brew.parent_span_id, handler.span_id);
    assert_eq!(brew.attr("barista"), brewing.attr("barista"));
    assert_eq!(brew.attr("order.id"), Some(order_id.as_str()));
    assert!(brew.duration() >= latte_brew_time().mul_f64(0.9));
}

#[tokio::test]
async fn failed_calls_are_marked_by_side_and_health_checks_are_not_traced() {
    let collector = Collector::start();
    let (telemetry, _default) = telemetry_to(collector.endpoint());
    let cafe = spawn_cafe(fast_config()).await;
    let mut client = connect_traced(cafe.addr).await;

    // A health check through a traced channel, then a call that fails.
    let channel = tonic::transport::Channel::from_shared(cafe.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(propagation::traced(channel));
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    let customer = tracing::info_span!("customer");
    let trace_id = trace_id_of(&customer);
    let status = client
        .get_order(GetOrderRequest {
            order_id: "no-such-order".into(),
        })
        .instrument(customer)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    let call = "cafe.v1.Cafe/GetOrder";
    let spans = collector
        .wait_for(&telemetry, "the failed call's spans", |spans| {
            has(spans, &trace_id, call, KIND_CLIENT) && has(spans, &trace_id, call, KIND_SERVER)
        })
        .await;
    let client_call = the(&spans, &trace_id, call, Some(KIND_CLIENT));
    let server_call = the(&spans, &trace_id, call, Some(KIND_SERVER));
    // NOT_FOUND: the client did not get what it wanted (an error); the
    // server did its job (no error).
    for span in [client_call, server_call] {
        assert_eq!(span.attr("rpc.grpc.status_code"), Some("5"));
    }
    assert_eq!(client_call.status_code, STATUS_ERROR);
    assert_ne!(server_call.status_code, STATUS_ERROR);

    // The health check ended before the failed call began; it left nothing.
    telemetry.flush();
    let health_spans: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|span| {
            span.name.contains("grpc.health")
                || span
                    .attr("rpc.service")
                    .is_some_and(|s| s.contains("health"))
        })
        .collect();
    assert!(health_spans.is_empty(), "{health_spans:#?}");
}

#[tokio::test]
async fn the_queue_wait_shows_contention_for_one_barista() {
    let collector = Collector::start();
    let (telemetry, _default) = telemetry_to(collector.endpoint());
    let cafe = spawn_cafe(cafe_server::Config {
        baristas: 1,
        ..fast_config()
    })
    .await;
    let client = connect_traced(cafe.addr).await;

    // Three customers at once, one barista.
    let orders = ["Ada", "Bo", "Cy"].map(|customer| {
        let mut client = client.clone();
        async move {
            client
                .order_coffee(order(customer, "latte"))
                .await
                .unwrap()
                .into_inner()
                .order
                .unwrap()
                .id
        }
    });
    let ids = futures::future::join_all(orders).await;

    let spans = collector
        .wait_for(&telemetry, "three queue waits", |spans| {
            ids.iter().all(|id| {
                spans
                    .iter()
                    .any(|s| s.name == "queue.wait" && s.attr("order.id") == Some(id))
            })
        })
        .await;
    let waits: Vec<Duration> = ids
        .iter()
        .map(|id| {
            spans
                .iter()
                .find(|s| s.name == "queue.wait" && s.attr("order.id") == Some(id))
                .unwrap()
                .duration()
        })
        .collect();
    // The last in line waits for two drinks to be brewed before its own.
    let longest = waits.iter().max().unwrap();
    let brew = latte_brew_time();
    eprintln!("queue waits {waits:?}, brew time {brew:?}");
    assert!(
        *longest >= brew.mul_f64(1.5),
        "the longest queue wait {longest:?} should be about two brews of {brew:?}"
    );
}

#[tokio::test]
async fn streaming_spans_end_with_their_streams() {
    let collector = Collector::start();
    let (telemetry, _default) = telemetry_to(collector.endpoint());
    let cafe = spawn_cafe(fast_config()).await;
    let mut client = connect_traced(cafe.addr).await;

    // A buzzer, read to its end.
    let customer = tracing::info_span!("customer");
    let buzzer_trace = trace_id_of(&customer);
    let mut events = client
        .order_with_buzzer(order("Ada", "latte"))
        .instrument(customer.clone())
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    while let Some(event) = events.next().await {
        event.unwrap();
        received += 1;
    }
    drop(customer);

    // A board watcher who walks away after the first update.
    let watcher = tracing::info_span!("watcher");
    let board_trace = trace_id_of(&watcher);
    let mut board = client
        .watch_board(WatchBoardRequest {})
        .instrument(watcher.clone())
        .await
        .unwrap()
        .into_inner();
    client.order_coffee(order("Bo", "espresso")).await.unwrap();
    board.next().await.unwrap().unwrap();
    drop(board);
    drop(watcher);

    let buzzer_call = "cafe.v1.Cafe/OrderWithBuzzer";
    let board_call = "cafe.v1.Cafe/WatchBoard";
    let spans = collector
        .wait_for(&telemetry, "the streams' spans", |spans| {
            has(spans, &buzzer_trace, buzzer_call, KIND_SERVER)
                && has(spans, &buzzer_trace, buzzer_call, KIND_CLIENT)
                && has(spans, &buzzer_trace, "buzzer", KIND_INTERNAL)
                && has(spans, &board_trace, board_call, KIND_SERVER)
                && has(spans, &board_trace, board_call, KIND_CLIENT)
        })
        .await;

    // The buzzer's call ended OK when the order was ready, after the last
    // event; each event sent is a span event on the buzzer's span.
    let server_call = the(&spans, &buzzer_trace, buzzer_call, Some(KIND_SERVER));
    let buzzer = the(&spans, &buzzer_trace, "buzzer", None);
    assert_eq!(server_call.attr("rpc.grpc.status_code"), Some("0"));
    assert_eq!(
        buzzer.events.iter().filter(|e| *e == "buzz").count(),
        received
    );
    assert!(received >= 3, "ticket, brewing, ready: got {received}");
    assert!(server_call.end >= buzzer.end);
    assert!(server_call.duration() >= latte_brew_time().mul_f64(0.9));
    let handler = the(&spans, &buzzer_trace, "order_with_buzzer", None);
    assert_eq!(buzzer.parent_span_id, handler.span_id);
    for phase in ["queue.wait", "brewing"] {
        assert_eq!(
            the(&spans, &buzzer_trace, phase, None).parent_span_id,
            buzzer.span_id
        );
    }

    // The board watcher hung up: the server's span still ended, as
    // cancelled (not a server error), and the client's as an error.
    let board_server = the(&spans, &board_trace, board_call, Some(KIND_SERVER));
    let board_client = the(&spans, &board_trace, board_call, Some(KIND_CLIENT));
    assert_eq!(board_server.attr("rpc.grpc.status_code"), Some("1"));
    assert_ne!(board_server.status_code, STATUS_ERROR);
    assert_eq!(board_client.attr("rpc.grpc.status_code"), Some("1"));
    assert_eq!(board_client.status_code, STATUS_ERROR);
}

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

#[tokio::test]
async fn a_retry_on_another_barista_is_a_second_brew_span_saying_why() {
    use cafe_domain::proto::v1::OrderStatus;
    let collector = Collector::start();
    let (telemetry, _default) = telemetry_to(collector.endpoint());
    // A latte takes 2 s here: long enough to kill its barista mid-brew.
    let slow = |name: &str| cafe_barista::Config {
        time_scale: menu::TimeScale::new(0.05).unwrap(),
        server: ServerFlags {
            ..ServerFlags::default()
        },
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
    // Siblings under the order's handler, one after the other.
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
    let _default = tracing::dispatcher::set_default(&dispatch);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start({
            let dispatch = dispatch.clone();
            move || std::mem::forget(tracing::dispatcher::set_default(&dispatch))
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
