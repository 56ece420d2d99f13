//! TLS across the services: the CLI to a TLS café (`--ca`, `https://`) and
//! the one-line errors when TLS is missing or the certificate is for another
//! name; a certificate renewed while a buzzer stays open; and mutual TLS
//! between the café and its baristas (`--tls-client-ca` on the barista, the
//! café's client certificate). Certificates are made at run time by a
//! private CA (`cafe_testkit::tls`); servers are real, on port 0.

use std::{net::SocketAddr, path::PathBuf};

use cafe_client::{
    connection::{self, Dial},
    error::ClientError,
};
use cafe_domain::proto::v1::{GetMenuRequest, OrderStatus, cafe_client::CafeClient};
use cafe_testkit::{
    Config, LIMIT,
    barista::{barista_config, spawn_barista},
    config_at_scale, order, remote_config, spawn_cafe, status_of,
    tls::{Issued, TestPki},
    until_brewing,
};
use grpc_serving::ServerFlags;
use tokio::time::timeout;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The address every server here listens on, and so the name in their
/// certificates (an IP address SAN).
const HOST: &str = "127.0.0.1";

/// Server flags serving TLS with `issued`.
fn tls_flags<E: grpc_serving::ServerEnv>(issued: &Issued) -> ServerFlags<E> {
    ServerFlags {
        tls_cert: Some(issued.cert.clone()),
        tls_key: Some(issued.key.clone()),
        ..ServerFlags::default()
    }
}

/// A café serving TLS with `issued`, brewing at `scale`.
fn tls_cafe(issued: &Issued, scale: f64) -> Config {
    let base = config_at_scale(scale);
    Config {
        server: tls_flags(issued),
        ..base
    }
}

fn dial(addr: SocketAddr, ca: Option<PathBuf>) -> Dial {
    Dial {
        server: format!("https://{addr}"),
        ca,
        identity: None,
    }
}

#[tokio::test]
async fn the_cli_orders_over_tls_with_the_ca() {
    let pki = TestPki::new("cafe");
    let issued = pki.issue("cafe", &[HOST, "localhost"]);
    let cafe = spawn_cafe(tls_cafe(&issued, cafe_testkit::FAST)).await;

    // A bare host:port with --ca means https://.
    let mut connection = connection::connect_to(&Dial {
        server: cafe.addr.to_string(),
        ca: Some(pki.ca_pem.clone()),
        identity: None,
    })
    .await
    .expect("a TLS connection with --ca");
    assert!(connection.url.starts_with("https://"), "{}", connection.url);
    let ready = connection
        .cafe
        .order_coffee(order("Ada", "espresso"))
        .await
        .expect("an order over TLS")
        .into_inner()
        .order
        .unwrap();
    assert_eq!(ready.status, OrderStatus::Ready as i32);
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_told_to_use_tls() {
    let pki = TestPki::new("cafe");
    let issued = pki.issue("cafe", &[HOST]);
    let cafe = spawn_cafe(tls_cafe(&issued, cafe_testkit::FAST)).await;

    let mut connection = connection::connect(&cafe.addr.to_string())
        .await
        .expect("TCP and the HTTP/2 preface go through");
    let status = connection
        .cafe
        .get_menu(GetMenuRequest {})
        .await
        .unwrap_err();
    let error = ClientError::from_status(status, &connection.url, None);
    let line = error.to_string();
    assert!(matches!(error, ClientError::NeedsTls { .. }), "{line}");
    assert!(line.contains("speaks TLS only"), "{line}");
    assert!(line.contains("https://") && line.contains("--ca"), "{line}");
    assert!(!line.contains('\n'), "one line: {line}");
}

#[tokio::test]
async fn tls_without_the_ca_or_to_another_name_fails_in_one_line() {
    let pki = TestPki::new("cafe");
    let elsewhere = pki.issue("elsewhere", &["elsewhere.example"]);
    let cafe = spawn_cafe(tls_cafe(&elsewhere, cafe_testkit::FAST)).await;

    // The certificate is the CA's, but for another name.
    let error = connection::connect_to(&dial(cafe.addr, Some(pki.ca_pem.clone())))
        .await
        .unwrap_err();
    let line = error.to_string();
    assert!(matches!(error, ClientError::Tls { .. }), "{line}");
    assert!(line.contains("not for this host name"), "{line}");
    assert!(!line.contains('\n'), "one line: {line}");

    // No --ca: nothing is trusted, and the error says to give one.
    let error = connection::connect_to(&dial(cafe.addr, None))
        .await
        .unwrap_err();
    let line = error.to_string();
    assert!(line.contains("--ca"), "{line}");

    // --ca with http:// is a contradiction, said before dialling.
    let error = connection::connect_to(&Dial {
        server: format!("http://{}", cafe.addr),
        ca: Some(pki.ca_pem.clone()),
        identity: None,
    })
    .await
    .unwrap_err();
    assert!(matches!(error, ClientError::CaWithoutTls { .. }), "{error}");
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_keeps_open_streams() {
    let pki = TestPki::new("cafe");
    let first = pki.issue("cafe", &[HOST]);
    // A latte of 2 s: the buzzer is open across the reload.
    let cafe = spawn_cafe(tls_cafe(&first, 0.05)).await;
    let tls = cafe.tls.clone().expect("a TLS café");
    assert_eq!(pki.served_certificate(cafe.addr, HOST).await, first.der);

    let channel = pki.channel(cafe.addr, HOST).await;
    let mut client = CafeClient::new(channel);
    let mut buzzer = client
        .order_with_buzzer(order("Ada", "latte"))
        .await
        .expect("an order over TLS")
        .into_inner();
    until_brewing(&mut buzzer).await;

    // Renewed: same files, new certificate and key.
    let renewed = pki.issue("cafe", &[HOST]);
    assert_ne!(renewed.der, first.der);
    tls.reload().expect("the renewed certificate is valid");
    assert_eq!(pki.served_certificate(cafe.addr, HOST).await, renewed.der);

    // The open connection was not touched: its stream ends READY, and it
    // takes new calls.
    let mut last = None;
    while let Some(event) = timeout(LIMIT, buzzer.message()).await.unwrap().unwrap() {
        last = Some(status_of(&event));
    }
    assert_eq!(last, Some(OrderStatus::Ready));
    client
        .get_menu(GetMenuRequest {})
        .await
        .expect("the old connection still works");

    // A broken renewal is refused and the last good one stays served.
    std::fs::write(&renewed.key, "not a key").unwrap();
    let error = tls.reload().unwrap_err().to_string();
    assert!(error.contains("--tls-key"), "{error}");
    assert_eq!(pki.served_certificate(cafe.addr, HOST).await, renewed.der);
}

/// A health check on the barista at `addr` over TLS, as a client that
/// presents `identity` (or no certificate).
async fn barista_health(pki: &TestPki, addr: SocketAddr, identity: Option<&Issued>) -> bool {
    let tls = match identity {
        Some(issued) => pki.client_tls_as(HOST, issued),
        None => pki.client_tls(HOST),
    };
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    let mut health = HealthClient::new(channel);
    let check = health.check(HealthCheckRequest::default());
    matches!(timeout(LIMIT, check).await, Ok(Ok(answer))
        if answer.get_ref().status == ServingStatus::Serving as i32)
}

#[tokio::test]
async fn mutual_tls_lets_only_a_cafe_with_a_client_certificate_brew() {
    let pki = TestPki::new("baristas");
    let barista_cert = pki.issue("barista", &[HOST]);
    let cafe_cert = pki.issue("cafe-client", &["cafe"]);
    let barista = spawn_barista(cafe_barista::Config {
        server: ServerFlags {
            tls_client_ca: Some(pki.ca_pem.clone()),
            ..tls_flags(&barista_cert)
        },
        ..barista_config("tls", 1)
    });
    let endpoint = barista.addr.to_string();

    // The barista itself: no client certificate, no answer.
    assert!(!barista_health(&pki, barista.addr, None).await);
    assert!(barista_health(&pki, barista.addr, Some(&cafe_cert)).await);

    // A café that trusts the barista but presents no certificate is
    // refused: it never has a barista, and says so.
    let without = spawn_cafe(Config {
        barista_ca: Some(pki.ca_pem.clone()),
        barista_wait: std::time::Duration::from_millis(300),
        ..remote_config(std::slice::from_ref(&endpoint))
    })
    .await;
    without
        .wait_for_health(ServingStatus::NotServing, LIMIT)
        .await;

    // With its client certificate, the same café brews there.
    let mut with = spawn_cafe(Config {
        barista_ca: Some(pki.ca_pem.clone()),
        barista_tls_cert: Some(cafe_cert.cert.clone()),
        barista_tls_key: Some(cafe_cert.key.clone()),
        ..remote_config(std::slice::from_ref(&endpoint))
    })
    .await;
    with.wait_for_health(ServingStatus::Serving, LIMIT).await;
    let ready = with
        .client
        .order_coffee(order("Ada", "espresso"))
        .await
        .expect("brewed over mutual TLS")
        .into_inner()
        .order
        .unwrap();
    assert_eq!(ready.status, OrderStatus::Ready as i32);
    assert_eq!(ready.barista, "tls/Ana");

    // The certificate-less café still has no barista (the barista's own
    // refusal of such a client is shown above): its orders are refused.
    let mut without = without;
    let status = without
        .client
        .order_coffee(order("Bob", "espresso"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("no barista"), "{status:?}");
}
