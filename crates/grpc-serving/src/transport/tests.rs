//! Each limit hit on purpose by a misbehaving client, on a real server on
//! port 0, while a well-behaved client on a connection of its own is still
//! served (its health check answers `SERVING`). Timeouts are set short
//! here; the waits for them are bounded by [`LIMIT`], far longer.

use std::{net::SocketAddr, pin::Pin, time::Duration};

use futures::Stream;
use tokio::{io::AsyncReadExt, net::TcpStream, sync::oneshot, time::Instant};
use tonic::{Request, Response, Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::*;
use crate::Server;
use cafe_domain::proto::{
    FILE_DESCRIPTOR_SET,
    v1::{
        BrewEvent, BrewRequest, GetStationRequest, Station,
        barista_server::{Barista, BaristaServer},
    },
};

/// Far more than any wait here should take, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(20);

/// Limits that no test hits unless it lowers one.
fn generous() -> Limits {
    Limits {
        max_connections: 10_000,
        handshake_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(600),
        max_streams_per_connection: 16_384,
        keepalive_interval: Duration::from_secs(60),
        keepalive_timeout: Duration::from_secs(20),
    }
}

/// A service that refuses every call: these tests are about the transport
/// around it. A call whose request never ends stays open, waiting for it.
struct Refuses;

#[tonic::async_trait]
impl Barista for Refuses {
    type BrewStream = Pin<Box<dyn Stream<Item = Result<BrewEvent, Status>> + Send>>;

    async fn brew(&self, _: Request<BrewRequest>) -> Result<Response<Self::BrewStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_station(
        &self,
        _: Request<GetStationRequest>,
    ) -> Result<Response<Station>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Starts a server with `limits` on port 0; it closes when the returned
/// sender is used or dropped.
async fn start(limits: Limits) -> (SocketAddr, oneshot::Sender<()>) {
    start_closing_in(limits, Duration::from_secs(1)).await
}

/// [`start`], with `grace` for closing.
async fn start_closing_in(limits: Limits, grace: Duration) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let closed = async {
        let _ = stopped.await;
    };
    let server = Server::new(listener, closed, grace, limits, 4096);
    tokio::spawn(server.serve(
        BaristaServer::new(Refuses),
        FILE_DESCRIPTOR_SET,
        |_deadline| async {},
    ));
    (addr, stop)
}

/// A well-behaved client, on a new connection, asks whether the server is
/// serving; panics unless it answers within [`LIMIT`].
async fn still_serves(addr: SocketAddr) {
    let asking = async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await?;
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let answer = HealthClient::new(channel).check(request).await?;
        Ok::<_, Box<dyn std::error::Error>>(answer.into_inner().status)
    };
    let status = tokio::time::timeout(LIMIT, asking)
        .await
        .expect("the health check answered in time")
        .expect("the health check succeeded");
    assert_eq!(status, 1, "SERVING");
}

/// Waits until the server closes `socket` (end of file or reset).
async fn closed_by_server(socket: &mut TcpStream) {
    let mut buf = [0; 1024];
    let closing = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // the server's SETTINGS, say
            }
        }
    };
    tokio::time::timeout(LIMIT, closing)
        .await
        .expect("the server closed the socket in time");
}

/// An HTTP/2 client on a new connection, handshaken.
async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<hyper::body::Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    client.ready().await.unwrap()
}

/// A `Brew` call's headers.
fn brew(addr: SocketAddr) -> http::Request<()> {
    http::Request::post(format!("http://{addr}/cafe.v1.Barista/Brew"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn sockets_that_never_speak_http2_are_closed_after_the_handshake_timeout() {
    let handshake_timeout = Duration::from_millis(500);
    let (addr, _stop) = start(Limits {
        handshake_timeout,
        ..generous()
    })
    .await;

    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..1_000 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // One that starts the preface and stops half-way is no better.
    let mut halfway = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut halfway, b"PRI * HTTP/2")
        .await
        .unwrap();
    still_serves(addr).await;

    for socket in &mut silent {
        closed_by_server(socket).await;
    }
    closed_by_server(&mut halfway).await;
    assert!(opened.elapsed() >= handshake_timeout);
    still_serves(addr).await;
}

#[tokio::test]
async fn past_the_most_connections_new_ones_are_closed_and_the_open_ones_served() {
    let (addr, _stop) = start(Limits {
        max_connections: 50,
        ..generous()
    })
    .await;
    // A well-behaved client, connected first.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut hogs = Vec::new();
    for _ in 0..49 {
        hogs.push(TcpStream::connect(addr).await.unwrap());
    }

    // The kernel completes the 51st connection; the server closes it.
    let mut one_too_many = TcpStream::connect(addr).await.unwrap();
    closed_by_server(&mut one_too_many).await;
    let check = health
        .check(HealthCheckRequest::default())
        .await
        .expect("the connected client is still served");
    assert_eq!(check.into_inner().status, 1);

    // A slot freed is a new connection accepted.
    drop(hogs.pop());
    let freed = async {
        loop {
            let channel = Channel::from_shared(format!("http://{addr}")).unwrap();
            if let Ok(channel) = channel.connect().await
                && HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await
                    .is_ok()
            {
                return;
            }
            // The server may not have seen the close yet.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, freed)
        .await
        .expect("a new connection once a slot is free");
}

#[tokio::test]
async fn thousands_of_streams_on_one_connection_stop_at_the_limit() {
    let (addr, _stop) = start(Limits {
        max_streams_per_connection: 2_000,
        ..generous()
    })
    .await;
    let mut client = h2_client(addr).await;
    // Until the server's SETTINGS arrive the client assumes no limit: one
    // call first, answered once its (empty) request ends.
    let (response, _) = client.send_request(brew(addr), true).unwrap();
    response.await.unwrap();

    // Calls whose request never ends: each holds a stream open.
    let mut open = Vec::new();
    for _ in 0..2_000 {
        client = client.ready().await.unwrap();
        open.push(client.send_request(brew(addr), false).unwrap());
    }
    // One more, whose request is complete, would be answered at once; it
    // waits for a free stream instead, while other clients are served.
    client = client.ready().await.unwrap();
    let (mut next, _) = client.send_request(brew(addr), true).unwrap();
    let early = tokio::time::timeout(Duration::from_millis(500), &mut next).await;
    assert!(early.is_err(), "a 2,001st stream was open at once");
    still_serves(addr).await;

    // One stream ended is one stream free.
    let (_response, mut request) = open.pop().unwrap();
    request.send_reset(h2::Reason::CANCEL);
    tokio::time::timeout(LIMIT, next)
        .await
        .expect("a stream frees up")
        .expect("and the waiting call is answered");
}

/// An HTTP/2 frame header: payload length, type, flags, stream id.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// The HPACK block of a `Brew` call's headers, without Huffman coding or
/// the dynamic table, so it can be written by hand.
fn brew_headers() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static table)
    // A literal, not indexed, its name from the static table (the index as
    // HPACK's 4-bit-prefix integer: 15 and up take a second byte).
    let literal = |block: &mut Vec<u8>, name_index: u8, value: &str| {
        if name_index < 15 {
            block.push(name_index);
        } else {
            block.extend([15, name_index - 15]);
        }
        block.push(value.len() as u8);
        block.extend(value.as_bytes());
    };
    literal(&mut block, 4, "/cafe.v1.Barista/Brew"); // :path
    literal(&mut block, 1, "localhost"); // :authority
    literal(&mut block, 31, "application/grpc"); // content-type
    block
}

#[tokio::test]
async fn a_flood_of_resets_ends_that_connection_and_no_one_else_s() {
    let (addr, _stop) = start(generous()).await;
    // Raw frames, so that each stream's HEADERS and its RST_STREAM leave
    // together (the "rapid reset" attack, CVE-2023-44487): the server has
    // work started for each stream before it learns it is cancelled.
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    flood.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let headers = brew_headers();
    for n in 0..20_000u32 {
        let stream = 2 * n + 1;
        flood.extend(frame(0x1, 0x4, stream, &headers)); // HEADERS, END_HEADERS
        flood.extend(frame(0x3, 0, stream, &0x8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let (mut from_server, mut to_server) = socket.split();
    let flooding = async {
        // The server may close the connection before all of it is sent.
        let _ = tokio::io::AsyncWriteExt::write_all(&mut to_server, &flood).await;
    };
    let mut received = Vec::new();
    let reading = async {
        let _ = from_server.read_to_end(&mut received).await;
    };
    let served = still_serves(addr);
    tokio::time::timeout(LIMIT, async { tokio::join!(flooding, reading, served) })
        .await
        .expect("the flooding connection was closed");

    // The server's last word on that connection: GOAWAY ENHANCE_YOUR_CALM.
    let mut rest = &received[..];
    let mut goaway = None;
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let payload = &rest[9..(9 + len).min(rest.len())];
        if rest[3] == 0x7 && payload.len() >= 8 {
            goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert_eq!(goaway, Some(0xb), "GOAWAY ENHANCE_YOUR_CALM");
    still_serves(addr).await;
}

#[tokio::test]
async fn a_connection_with_no_call_is_closed_after_the_idle_timeout() {
    let idle_timeout = Duration::from_millis(300);
    let (addr, _stop) = start(Limits {
        idle_timeout,
        ..generous()
    })
    .await;
    // One connection with a call that stays open, one whose call ended.
    let mut busy = h2_client(addr).await;
    let (_waiting, _request) = busy.send_request(brew(addr), false).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut idle, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let last_call = Instant::now();
    let (response, _) = idle.send_request(brew(addr), true).unwrap();
    response.await.unwrap();

    // The idle one gets GOAWAY and closes cleanly.
    tokio::time::timeout(LIMIT, connection)
        .await
        .expect("the idle connection was closed")
        .unwrap()
        .expect("closed cleanly, with GOAWAY");
    assert!(last_call.elapsed() >= idle_timeout);
    // The busy one is not idle, however long its call takes.
    busy.clone()
        .ready()
        .await
        .expect("the connection with an open call is still open");
    still_serves(addr).await;
}

/// A call sent while the server closes is answered only once its client
/// has read GOAWAY (`hold.rs`): a client that sends again after each answer
/// is then waiting when GOAWAY comes, never half-way through sending a
/// call, which tonic's client would fail `INTERNAL` ("GoAway NO_ERROR").
#[tokio::test]
async fn a_call_sent_while_the_server_closes_is_answered_once_the_client_has_read_goaway() {
    let (addr, stop) = start_closing_in(generous(), Duration::from_secs(10)).await;
    let mut client = h2_client(addr).await;
    let (response, _) = client.send_request(brew(addr), true).unwrap();
    response.await.expect("an open server answers at once");

    // Closing: the listener goes first, then the connections close.
    drop(stop);
    let refused = async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(LIMIT, refused)
        .await
        .expect("the server stopped listening");
    tokio::time::sleep(Duration::from_millis(100)).await;

    client = client
        .ready()
        .await
        .expect("GOAWAY waits for a quiet client");
    let (response, _) = client.send_request(brew(addr), true).unwrap();
    let response = tokio::time::timeout(LIMIT, response)
        .await
        .expect("the call was answered in time")
        .expect("the call was answered, not refused");
    // (INTERNAL: a `Brew` with no request message. Not UNAVAILABLE: the
    // service answered it, it was not cut at the end of the grace.)
    assert_eq!(response.headers()["grpc-status"], "13");
    assert!(
        client.ready().await.is_err(),
        "answered before the client had read GOAWAY"
    );
}
