//! Traces, end to end: a traced client, a real café and a real OTLP
//! collector (see `cafe_testkit::otlp`), all in this process.
//!
//! How each test gets a telemetry stack of its own: the global subscriber
//! can be installed once per process, so instead each test builds one with
//! [`telemetry::build`] and makes it the default *for its thread*
//! (`cafe_testkit::set_thread_default`). `#[tokio::test]` runs on a
//! current-thread runtime, so the café's tasks, the client and every span
//! they open live on that thread and report to that test's collector. Tests
//! run in parallel without seeing each other's spans.
//!
//! Spans are exported in batches; `Collector::wait_for` flushes and waits
//! for the spans a test expects (no sleeps).
//!
//! Here, what one order's trace shows; in [`across_baristas`], traces
//! through remote baristas; in [`export`], the exporter under faults and
//! limits.

mod across_baristas;
mod export;

use std::time::Duration;

use cafe_domain::{
    menu::{self, Size},
    proto::v1::{GetOrderRequest, WatchBoardRequest},
};
use cafe_testkit::{
    connect_traced, fast_config, order,
    otlp::{CollectedSpan, Collector, KIND_CLIENT, KIND_INTERNAL, KIND_SERVER, STATUS_ERROR},
    spawn_cafe,
};
use futures::StreamExt;
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
    (telemetry, cafe_testkit::set_thread_default(&dispatch))
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
            ["customer", "queue.wait", "brewing"]
                .iter()
                .all(|name| has(spans, &trace_id, name, KIND_INTERNAL))
                && has(spans, &trace_id, call, KIND_CLIENT)
                && has(spans, &trace_id, call, KIND_SERVER)
        })
        .await;

    // One trace, parent to child: customer → client call → server call
    // (the handler's span too) → (queue.wait, brewing).
    let customer = the(&spans, &trace_id, "customer", None);
    let client_call = the(&spans, &trace_id, call, Some(KIND_CLIENT));
    let server_call = the(&spans, &trace_id, call, Some(KIND_SERVER));
    // The handler runs in the server call's span and writes onto it.
    let handler = server_call;
    let queued = the(&spans, &trace_id, "queue.wait", None);
    let brewing = the(&spans, &trace_id, "brewing", None);
    assert_eq!(client_call.parent_span_id, customer.span_id);
    assert_eq!(server_call.parent_span_id, client_call.span_id);
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
    // The handler runs in the server call's span: the buzzer is its child,
    // and the order's attributes are on it.
    assert_eq!(buzzer.parent_span_id, server_call.span_id);
    assert_eq!(server_call.attr("customer"), Some("Ada"));
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
