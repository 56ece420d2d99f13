//! The floor and the span sink on port 0, over real gRPC: the floor answers
//! the café's contract as the benchmark expects (READY at the counter;
//! QUEUED, BREWING, READY on a buzzer; the menu; INVALID_ARGUMENT for a
//! drink not on the menu), and the sink counts every span it is sent.

use std::net::SocketAddr;

use cafe_bench_floor::{collector::SpanCounter, floor::FloorCafe, proto::cafe_server::CafeServer};
use cafe_domain::{
    menu::TimeScale,
    proto::v1::{GetMenuRequest, OrderRequest, OrderStatus, Size, cafe_client::CafeClient},
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use tokio::net::TcpListener;
use tonic::{
    Code,
    transport::{Channel, Server, server::TcpIncoming},
};

/// Serves `router` on 127.0.0.1:0 for the rest of the test.
async fn serve(router: tonic::transport::server::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn latte() -> OrderRequest {
    OrderRequest {
        customer: "ana".into(),
        drink: "latte".into(),
        size: Size::Medium as i32,
        request_id: String::new(),
    }
}

#[tokio::test]
async fn the_floor_serves_the_cafes_contract_by_sleeping() {
    // A medium latte (40 s at scale 1) brews in 20 ms; one barista.
    let floor = FloorCafe::new(TimeScale::new(0.0005).unwrap(), Some(1));
    let addr = serve(Server::builder().add_service(CafeServer::new(floor))).await;
    let mut cafe = CafeClient::new(channel(addr).await);

    let served = cafe.order_coffee(latte()).await.unwrap().into_inner();
    let order = served.order.unwrap();
    assert_eq!(order.status, OrderStatus::Ready as i32);
    assert_eq!(
        (order.customer.as_str(), order.drink.as_str()),
        ("ana", "latte")
    );

    let mut buzzer = cafe.order_with_buzzer(latte()).await.unwrap().into_inner();
    let mut statuses = Vec::new();
    while let Some(event) = buzzer.message().await.unwrap() {
        statuses.push(event.order.unwrap().status);
    }
    assert_eq!(
        statuses,
        [
            OrderStatus::Queued,
            OrderStatus::Brewing,
            OrderStatus::Ready
        ]
        .map(|s| s as i32)
    );

    let menu = cafe.get_menu(GetMenuRequest {}).await.unwrap().into_inner();
    assert!(menu.drinks.iter().any(|drink| drink.id == "latte"));
    assert_eq!(menu.time_scale, 0.0005);

    let refused = cafe
        .order_coffee(OrderRequest {
            drink: "frappe".into(),
            ..latte()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_sink_counts_every_span_it_is_sent() {
    let counter = SpanCounter::default();
    let addr = serve(Server::builder().add_service(counter.service(4 << 20))).await;
    let mut client = TraceServiceClient::new(channel(addr).await);
    let batch = |spans: usize| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); spans],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    client.export(batch(3)).await.unwrap();
    client.export(batch(5)).await.unwrap();
    assert_eq!((counter.spans(), counter.exports()), (8, 2));
}
