//! The gRPC interop cases that apply to the café, each against a real café
//! on port 0: what any gRPC client, in any language, may count on.
//!
//! gRPC's interop suite (`doc/interop-test-descriptions.md` in the gRPC
//! repository) names the behaviours every implementation must share. Those
//! that mean something for the café are here, or already tested elsewhere:
//!
//! | Interop case | Here | Elsewhere |
//! | --- | --- | --- |
//! | `cancel_after_first_response` | the dropped buzzer's order is still brewed, and its re-attached stream can be dropped too | `leaks`: no task or stream left behind |
//! | `timeout_on_sleeping_server` | `DEADLINE_EXCEEDED` exactly, from the café (a raw HTTP/2 client with no timer of its own), and the barista freed | `cancelling`: the same through tonic's client |
//! | `status_code_and_message`, `special_status_message` | Unicode names round-trip exactly; a refusal's message and details arrive intact through `grpc-message`'s percent-encoding | `orders`: each bad field named |
//! | `unimplemented_method`, `unimplemented_service` | `UNIMPLEMENTED`, and the café goes on serving | |
//! | `custom_metadata` (large) | an 8 KiB header is served; one over the café's 16 KiB header limit gets HTTP 431 (`UNKNOWN` naming 431), and the café goes on serving | |
//! | `max_message_size` | | `limits` |
//!
//! The others (compression, client-compressed streaming, the test
//! service's echo methods, per-RPC credentials) have no counterpart in the
//! café's API.

use cafe_domain::{
    order::quoted,
    proto::v1::{
        GetMenuRequest, GetMenuResponse, GetOrderRequest, OrderRequest, OrderStatus,
        WatchOrderRequest,
    },
    status::invalid_argument,
};
use cafe_server::Config;
use cafe_testkit::{
    LIMIT, TestCafe, config_at_scale, connect, fast_config, metrics::Scrape, metrics::scrape_until,
    order, spawn_cafe, status_of, with_metrics,
};
use futures::StreamExt;
use http::uri::PathAndQuery;
use prost::Message;
use tonic::{Code, Status, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt;

/// Customer names beyond ASCII: accents, CJK, emoji, an emoji made of
/// several code points (joined by U+200D), and a combining accent.
const NAMES: [&str; 6] = [
    "Zoë",
    "李",
    "☕ Zoë 🦀",
    "👩‍🔬 Ada",
    "e\u{301}milie",
    "Ω%20 \"quoted\" ?#{}",
];

fn buzzers_open(scrape: &Scrape) -> f64 {
    scrape.get("cafe_buzzers_open", &[])
}

fn streams_open(scrape: &Scrape, method: &str) -> f64 {
    scrape.get("grpc_server_calls_in_flight", &[("grpc_method", method)])
}

/// Waits until the café holds no buzzer or `WatchOrder` stream.
async fn until_no_stream_is_held(cafe: &TestCafe) -> Scrape {
    scrape_until(
        cafe.metrics_addr.unwrap(),
        LIMIT,
        "every buzzer and WatchOrder stream freed",
        |scrape| {
            buzzers_open(scrape) == 0.0
                && streams_open(scrape, "OrderWithBuzzer") == 0.0
                && streams_open(scrape, "WatchOrder") == 0.0
        },
    )
    .await
}

#[tokio::test]
async fn cancel_after_first_response_frees_the_stream_and_the_order_is_still_brewed() {
    // A latte takes 800 ms: the customer hangs up long before it is ready.
    let mut cafe = spawn_cafe(with_metrics(config_at_scale(0.02))).await;

    let mut buzzer = cafe.buzzer("Ana", "latte").await;
    let ticket = buzzer.message().await.unwrap().expect("the ticket");
    assert_eq!(status_of(&ticket), OrderStatus::Queued);
    let id = ticket.order.unwrap().id;
    drop(buzzer);
    until_no_stream_is_held(&cafe).await;

    // Re-attached, one event read, dropped again: freed again.
    let watch = || WatchOrderRequest {
        order_id: id.clone(),
    };
    let mut again = cafe.client.watch_order(watch()).await.unwrap().into_inner();
    again
        .message()
        .await
        .unwrap()
        .expect("the order as it is now");
    drop(again);
    until_no_stream_is_held(&cafe).await;

    // The contract (cafe.proto): a buzzer customer's order goes on without
    // them, and they may come back for it.
    let mut last = cafe.client.watch_order(watch()).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(LIMIT, last.next())
        .await
        .expect("the order ends in time")
    {
        seen.push(status_of(&event.unwrap()));
    }
    assert_eq!(seen.last(), Some(&OrderStatus::Ready), "{seen:?}");
    let ended = until_no_stream_is_held(&cafe).await;
    assert_eq!(
        ended.get("cafe_orders_ended_total", &[("status", "ready")]),
        1.0
    );
}

/// What a raw HTTP/2 gRPC call got back: the HTTP status and the gRPC one.
#[derive(Debug)]
struct RawAnswer {
    http_status: http::StatusCode,
    grpc: Option<Status>,
}

/// One unary gRPC call over raw HTTP/2, with exactly the headers given.
///
/// Why not tonic's client: it runs its own timer for `grpc-timeout`
/// (answering `CANCELLED` "Timeout expired" itself), so which side's answer
/// a test sees would depend on the machine's load. A client with no timer
/// of its own sees only what the server says, as a client in another
/// language would.
async fn raw_call(
    cafe: &TestCafe,
    path: &str,
    headers: &[(&str, String)],
    message: &impl Message,
) -> RawAnswer {
    let tcp = tokio::net::TcpStream::connect(cafe.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    // The connection is driven by its own task, ended when the call's
    // handles are dropped with `client`.
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::post(format!("{}{path}", cafe.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let (response, mut body) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    // A gRPC message: no compression, its length, then its bytes.
    let bytes = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((bytes.len() as u32).to_be_bytes());
    frame.extend(bytes);
    body.send_data(frame.into(), true).unwrap();

    let answer = async {
        let response = response.await.expect("a response");
        let http_status = response.status();
        // A refusal before any message is "trailers only": the status is in
        // the headers. Otherwise it is in the trailers after the body.
        if let Some(status) = Status::from_header_map(response.headers()) {
            return RawAnswer {
                http_status,
                grpc: Some(status),
            };
        }
        let mut body = response.into_body();
        while let Some(data) = body.data().await {
            let data = data.expect("the body");
            body.flow_control().release_capacity(data.len()).unwrap();
        }
        let trailers = body.trailers().await.expect("the trailers");
        RawAnswer {
            http_status,
            grpc: trailers.as_ref().and_then(Status::from_header_map),
        }
    };
    tokio::time::timeout(LIMIT, answer)
        .await
        .expect("the café answered in time")
}

#[tokio::test]
async fn timeout_on_a_sleeping_server_is_deadline_exceeded_and_the_barista_is_freed() {
    // One barista; a latte takes 20 s, far longer than the deadline.
    let cafe = spawn_cafe(Config {
        baristas: 1,
        ..with_metrics(config_at_scale(0.5))
    })
    .await;

    let answer = raw_call(
        &cafe,
        "/cafe.v1.Cafe/OrderCoffee",
        &[("grpc-timeout", "300m".into())],
        &order("Ada", "latte"),
    )
    .await;
    assert_eq!(answer.http_status, http::StatusCode::OK);
    let status = answer.grpc.expect("a gRPC status");
    // Exactly DEADLINE_EXCEEDED, as the spec says: not tonic's CANCELLED.
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // The order went with its customer, and the only barista is free.
    let after = scrape_until(
        cafe.metrics_addr.unwrap(),
        LIMIT,
        "the order cancelled and its barista free",
        |scrape| {
            scrape.get("cafe_orders_ended_total", &[("status", "cancelled")]) == 1.0
                && scrape.get("cafe_orders", &[("status", "brewing")]) == 0.0
        },
    )
    .await;
    assert_eq!(
        after.get(
            "grpc_server_handling_seconds_count",
            &[
                ("grpc_method", "OrderCoffee"),
                ("grpc_code", "DEADLINE_EXCEEDED")
            ]
        ),
        1.0
    );
    assert_eq!(streams_open(&after, "OrderCoffee"), 0.0);
}

#[tokio::test]
async fn unicode_names_round_trip_exactly_through_every_call() {
    let mut cafe = spawn_cafe(fast_config()).await;
    // The longest name allowed is 64 characters, not bytes: 64 emoji are
    // 256 bytes.
    let longest = "☕".repeat(64);
    for name in NAMES.iter().copied().chain([longest.as_str()]) {
        let ready = cafe
            .client
            .order_coffee(order(name, "espresso"))
            .await
            .unwrap_or_else(|status| panic!("{name:?} refused: {status:?}"))
            .into_inner()
            .order
            .unwrap();
        assert_eq!(ready.customer, name);
        assert_eq!(ready.status, OrderStatus::Ready as i32);

        let got = cafe
            .client
            .get_order(GetOrderRequest {
                order_id: ready.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.customer, name, "GetOrder");

        let watched: Vec<_> = cafe
            .client
            .watch_order(WatchOrderRequest {
                order_id: ready.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        assert_eq!(
            watched.len(),
            1,
            "a finished order: its state, then the end"
        );
        let watched = watched[0].as_ref().unwrap().order.as_ref().unwrap();
        assert_eq!(watched.customer, name, "WatchOrder");

        let mut buzzer = cafe.buzzer(name, "espresso").await;
        let ticket = buzzer.message().await.unwrap().unwrap();
        assert_eq!(ticket.order.unwrap().customer, name, "OrderWithBuzzer");
    }
}

#[tokio::test]
async fn a_refusal_arrives_intact_however_odd_its_text() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let bad = |customer: &str, drink: &str| OrderRequest {
        customer: customer.into(),
        drink: drink.into(),
        size: 0,
        request_id: String::new(),
    };
    let cases = [
        // A name one character too long, in emoji.
        (bad(&"☕".repeat(65), "latte"), "customer"),
        // Control characters, around Unicode.
        (bad("Zoë\u{7}李", "latte"), "customer"),
        (bad("🦀\u{1b}[31m", "latte"), "customer"),
        // The café echoes an unknown drink: Unicode, `%`, quotes and the
        // characters `grpc-message` percent-encodes come back as sent.
        (bad("Zoë", "李 ☕ 100% \"strong\" <{?#}>"), "drink"),
        (bad("Zoë", "caf\u{e9}\u{301}"), "drink"),
        // A drink name as long as a request may be (30 KB): echoed in
        // part only, so the refusal still fits in the client's headers.
        (bad("Zoë", &"☕".repeat(10_000)), "drink"),
    ];
    for (request, field) in cases {
        // What the café's validation says, worked out here from the same
        // code: the client must receive exactly that.
        let violations = cafe_domain::order::NewOrder::try_from(&request).unwrap_err();
        let sent = invalid_argument(&violations);
        for received in [
            cafe.client.order_coffee(request.clone()).await.unwrap_err(),
            cafe.client
                .order_with_buzzer(request.clone())
                .await
                .unwrap_err(),
        ] {
            assert_eq!(received.code(), Code::InvalidArgument, "{request:?}");
            assert_eq!(received.message(), sent.message(), "{request:?}");
            assert!(received.message().contains(field), "{received:?}");
            let details = received.get_details_bad_request().expect("BadRequest");
            let fields: Vec<(&str, &str)> = details
                .field_violations
                .iter()
                .map(|v| (v.field.as_str(), v.description.as_str()))
                .collect();
            assert_eq!(fields, [(field, violations[0].description.as_str())]);
        }
    }

    // An unknown order's id is echoed too, whatever it holds; a long one
    // only in part, so the answer still fits in the client's headers.
    let long_id = "☕".repeat(10_000);
    let not_found = cafe
        .client
        .get_order(GetOrderRequest {
            order_id: long_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_found.code(), Code::NotFound, "{not_found:?}");
    assert!(not_found.message().contains(&quoted(&long_id)));
    for id in NAMES {
        let not_found = cafe
            .client
            .get_order(GetOrderRequest {
                order_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(not_found.code(), Code::NotFound);
        assert!(
            not_found.message().contains(&format!("{id:?}")),
            "{:?} does not quote {id:?}",
            not_found.message()
        );
    }
}

/// Calls `path` on the café with an empty message, as a client built from
/// another version of the proto would.
async fn call_path(channel: Channel, path: &'static str) -> Result<GetMenuResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(GetMenuRequest {}),
        PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn unimplemented_methods_and_services_are_unimplemented_and_the_cafe_serves_on() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let channel = Channel::from_shared(cafe.url()).unwrap().connect_lazy();
    for path in [
        // A method the café's service does not have.
        "/cafe.v1.Cafe/OrderTea",
        // A service the café does not serve.
        "/cafe.v2.Cafe/GetMenu",
        "/grpc.testing.TestService/EmptyCall",
    ] {
        let status = call_path(channel.clone(), path).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
    // The same connection, and the café, go on.
    call_path(channel, "/cafe.v1.Cafe/GetMenu").await.unwrap();
    cafe.client.get_menu(GetMenuRequest {}).await.unwrap();
}

#[tokio::test]
async fn large_metadata_is_served_up_to_the_header_limit_and_refused_clearly_beyond() {
    let mut cafe = spawn_cafe(fast_config()).await;
    let with_header = |bytes: usize| {
        let mut request = tonic::Request::new(order("Ada", "espresso"));
        let value = MetadataValue::try_from("x".repeat(bytes)).unwrap();
        request.metadata_mut().insert("x-cafe-note", value);
        request
    };

    // 8 KiB of custom metadata: served.
    let served = cafe.client.order_coffee(with_header(8 * 1024)).await;
    assert!(served.is_ok(), "{served:?}");

    // Over the café's header limit (16 KiB, hyper's default): the HTTP/2
    // layer refuses the call before any gRPC code sees it, with HTTP 431
    // (Request Header Fields Too Large). gRPC's mapping of HTTP codes has
    // no row for 431, so every client reports UNKNOWN; tonic's message
    // names the 431.
    let refused = cafe
        .client
        .order_coffee(with_header(32 * 1024))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unknown, "{refused:?}");
    assert!(refused.message().contains("431"), "{refused:?}");

    // The café goes on serving, on this connection and on a new one.
    cafe.client.get_menu(GetMenuRequest {}).await.unwrap();
    connect(cafe.addr)
        .await
        .get_menu(GetMenuRequest {})
        .await
        .unwrap();
}
