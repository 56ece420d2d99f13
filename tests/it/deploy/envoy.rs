//! `deploy/envoy/envoy.yaml` on its own: what makes a proxy right for the
//! café's gRPC, whatever cafés it fronts (the compose test checks the
//! cafés it names):
//! - each cluster is `STRICT_DNS` (one name, an address per replica),
//!   speaks HTTP/2, asks each café's `grpc.health.v1` health for the café's
//!   own service and never sends to one that says NOT_SERVING (no panic
//!   mode);
//! - nothing cuts a long call short: no route timeout, the client's
//!   `grpc-timeout` as the deadline, and a stream idle timeout longer than
//!   the longest drink at real time (a buzzer may hear nothing while it
//!   brews);
//! - every route names a real method (read from `cafe.proto`) and a real
//!   cluster, every method is routed, and `UNAVAILABLE` is retried only on
//!   calls that change nothing (an order answered `UNAVAILABLE` may already
//!   be in line);
//! - where it speaks TLS (`deploy/envoy/envoy.tls.yaml`, for
//!   `docker-compose.tls.yml`), it offers ALPN `h2` on both sides, and checks
//!   each café's certificate against a CA and the café's name, which it also
//!   asks for with SNI;
//! - `envoy.tls.yaml` is `envoy.yaml` and nothing else but the TLS: both
//!   parsed, every `transport_socket` removed, they are equal. Envoy reads one
//!   static file, so the TLS file is a copy; this is what keeps it one.
//!
//! The configuration as these checks read it is [`config`]; what is wrong
//! with it, [`problems`], is here.

mod config;

pub(crate) use config::Envoy;
use config::Route;

use std::time::Duration;

use serde_norway::Value;

const ENVOY: &str = include_str!("../../../deploy/envoy/envoy.yaml");
const ENVOY_TLS: &str = include_str!("../../../deploy/envoy/envoy.tls.yaml");
const CAFE_PROTO: &str = include_str!("../../../proto/cafe/v1/cafe.proto");

/// The calls a retry would repeat with an effect: each may have placed or
/// cancelled an order before its café answered `UNAVAILABLE`.
const CHANGES_SOMETHING: [&str; 3] = ["OrderCoffee", "OrderWithBuzzer", "CancelOrder"];

/// Retry conditions that may repeat a call the café has already read.
const AFTER_THE_CAFE_READ_IT: [&str; 6] = [
    "unavailable",
    "reset",
    "5xx",
    "gateway-error",
    "retriable-status-codes",
    "internal",
];

#[test]
fn envoy_is_configured_for_grpc() {
    for (file, text) in [("envoy.yaml", ENVOY), ("envoy.tls.yaml", ENVOY_TLS)] {
        let envoy = Envoy::parse(text).expect(file);
        let problems = problems(&envoy);
        assert!(
            problems.is_empty(),
            "deploy/envoy/{file}:\n- {}",
            problems.join("\n- ")
        );
    }
    let plain = Envoy::parse(ENVOY).expect("envoy.yaml");
    assert!(
        plain.listeners.iter().all(|l| l.tls.is_none())
            && plain.clusters.values().all(|c| c.tls.is_none()),
        "envoy.yaml speaks TLS; that is envoy.tls.yaml's job"
    );
    let tls = Envoy::parse(ENVOY_TLS).expect("envoy.tls.yaml");
    assert!(
        tls.listeners.iter().all(|l| l.tls.is_some())
            && tls.clusters.values().all(|c| c.tls.is_some()),
        "envoy.tls.yaml must speak TLS to the clients and to the cafés"
    );
}

#[test]
fn the_tls_config_is_the_plain_one_plus_tls() {
    assert_eq!(beyond_tls(ENVOY, ENVOY_TLS), Ok(()));
    // A change made to one file only is caught, whichever file it is in.
    for (what, from, to) in [
        (
            "a buzzer timeout changed in one file",
            "stream_idle_timeout: 3600s",
            "stream_idle_timeout: 7200s",
        ),
        (
            "a health check interval changed in one file",
            "interval: 3s",
            "interval: 5s",
        ),
    ] {
        assert!(
            ENVOY.contains(from) && ENVOY_TLS.contains(from),
            "{what}: {from:?} is gone; update this test"
        );
        let broken_tls = ENVOY_TLS.replacen(from, to, 1);
        let broken_plain = ENVOY.replacen(from, to, 1);
        assert!(
            beyond_tls(ENVOY, &broken_tls).is_err(),
            "{what} in envoy.tls.yaml went unnoticed"
        );
        assert!(
            beyond_tls(&broken_plain, ENVOY_TLS).is_err(),
            "{what} in envoy.yaml went unnoticed"
        );
    }
}

#[test]
fn each_kind_of_envoy_tls_drift_is_caught() {
    let breakages = [
        (
            "no ALPN to the clients",
            "alpn_protocols: [\"h2\"]\n                tls_certificates",
            "tls_certificates",
        ),
        (
            "HTTP/1.1 offered to the cafés",
            "alpn_protocols: [\"h2\"]\n            validation_context",
            "alpn_protocols: [\"http/1.1\"]\n            validation_context",
        ),
        ("SNI for another name", "sni: cafe", "sni: barista"),
        (
            "any certificate from the CA accepted",
            "matcher: { exact: cafe }",
            "matcher: { prefix: \"\" }",
        ),
        (
            "the cafés' certificates not checked",
            "trusted_ca: { filename: /certs/ca.pem }",
            "trust_chain_verification: ACCEPT_UNTRUSTED",
        ),
        (
            "no certificate to present",
            "- certificate_chain: { filename: /certs/cafe.pem }\n                    private_key: { filename: /certs/cafe-key.pem }",
            "[]",
        ),
    ];
    each_is_caught("envoy.tls.yaml", ENVOY_TLS, &breakages);
}

/// Breaks `config` (the text of `file`) in each way of `breakages`, a
/// `(what, from, to)` each, and fails unless every one is reported.
fn each_is_caught(file: &str, config: &str, breakages: &[(&str, &str, &str)]) {
    for &(what, from, to) in breakages {
        assert!(
            config.contains(from),
            "{what}: {from:?} is no longer in {file}; update this test"
        );
        let broken = config.replacen(from, to, 1);
        let problems = match Envoy::parse(&broken) {
            Ok(envoy) => problems(&envoy),
            Err(error) => vec![error],
        };
        assert!(
            !problems.is_empty(),
            "{what} ({from} -> {to}) went unnoticed"
        );
        eprintln!("{what}: {}", problems.join("; "));
    }
}

/// `Ok` when `tls` is `plain` plus `transport_socket`s and nothing else.
fn beyond_tls(plain: &str, tls: &str) -> Result<(), String> {
    fn without_tls(text: &str) -> Value {
        fn strip(value: &mut Value) {
            match value {
                Value::Mapping(map) => {
                    map.remove("transport_socket");
                    map.values_mut().for_each(strip);
                }
                Value::Sequence(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut value: Value = serde_norway::from_str(text).expect("YAML");
        // Anchors and aliases (`*read_route`) are resolved by the parser;
        // compare what Envoy sees.
        strip(&mut value);
        value
    }
    let (plain, tls) = (without_tls(plain), without_tls(tls));
    if plain == tls {
        Ok(())
    } else {
        Err(format!(
            "envoy.tls.yaml differs from envoy.yaml beyond transport_socket; make the change in both:\n{}",
            first_difference(&plain, &tls, "")
        ))
    }
}

/// Where two values first differ, as a path, for the failure message.
fn first_difference(a: &Value, b: &Value, path: &str) -> String {
    match (a, b) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (key, value) in a {
                let name = format!("{path}.{}", key.as_str().unwrap_or("?"));
                match b.get(key) {
                    Some(other) if other == value => {}
                    Some(other) => return first_difference(value, other, &name),
                    None => return format!("{name}: only in envoy.yaml"),
                }
            }
            format!("{path}: a key only in envoy.tls.yaml")
        }
        (Value::Sequence(a), Value::Sequence(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]")))
            .unwrap_or_default(),
        _ => format!("{path}: {a:?} in envoy.yaml, {b:?} in envoy.tls.yaml"),
    }
}

#[test]
fn each_kind_of_envoy_drift_is_caught() {
    let breakages = [
        (
            "a route timeout",
            "timeout: 0s\n                            max_stream_duration:\n                              # The",
            "timeout: 15s\n                            max_stream_duration:\n                              # The",
        ),
        (
            "buzzers cut after a minute of silence",
            "stream_idle_timeout: 3600s",
            "stream_idle_timeout: 60s",
        ),
        (
            "orders retried on UNAVAILABLE",
            "retry_on: \"connect-failure,refused-stream\"",
            "retry_on: \"unavailable,connect-failure,refused-stream\"",
        ),
        (
            "the client's deadline ignored",
            "grpc_timeout_header_max: 0s\n                            retry_policy: &read_retry",
            "grpc_timeout_max: 0s\n                            retry_policy: &read_retry",
        ),
        ("one address only", "type: STRICT_DNS", "type: LOGICAL_DNS"),
        (
            "HTTP/1.1 to the cafés",
            "explicit_http_config:\n            http2_protocol_options:",
            "explicit_http_config:\n            http_protocol_options:",
        ),
        (
            "a health check for a service the café does not report",
            "service_name: cafe.v1.Cafe",
            "service_name: cafe.Cafe",
        ),
        (
            "panic mode left on",
            "healthy_panic_threshold: { value: 0 }",
            "healthy_panic_threshold: { value: 50 }",
        ),
        (
            "a route to a method that does not exist",
            "\"/cafe.v1.Cafe/GetOrder\"",
            "\"/cafe.v1.Cafe/GetOrders\"",
        ),
        (
            "a route to no cluster",
            "cluster: cafe\n                            timeout: 0s\n                            max_stream_duration:\n                              grpc_timeout_header_max: 0s\n                            retry_policy:\n",
            "cluster: cafes\n                            timeout: 0s\n                            max_stream_duration:\n                              grpc_timeout_header_max: 0s\n                            retry_policy:\n",
        ),
        (
            "a method left unrouted",
            "- match: { prefix: \"/\" }",
            "- match: { prefix: \"/cafe.v1.Cafe/GetStats\" }",
        ),
    ];
    each_is_caught("envoy.yaml", ENVOY, &breakages);
}

/// What is wrong with Envoy's configuration for the café's gRPC.
pub(crate) fn problems(envoy: &Envoy) -> Vec<String> {
    let mut problems = Vec::new();
    let methods: Vec<String> = CAFE_PROTO
        .lines()
        .filter_map(|line| line.trim().strip_prefix("rpc "))
        .filter_map(|rest| rest.split('(').next())
        .map(|name| {
            format!(
                "/{}/{}",
                cafe_domain::proto::v1::cafe_server::SERVICE_NAME,
                name.trim()
            )
        })
        .collect();
    assert!(methods.len() >= 8, "no rpc read from cafe.proto");
    let longest_real_brew = cafe_domain::menu::MENU
        .iter()
        .flat_map(|drink| {
            drink
                .sizes
                .iter()
                .map(move |size| drink.brew_time_for(*size, cafe_domain::menu::TimeScale::REAL))
        })
        .max()
        .unwrap_or_default();
    if envoy.listeners.is_empty() {
        problems.push("no listener".into());
    }
    for listener in &envoy.listeners {
        let name = &listener.name;
        if let Some(tls) = &listener.tls {
            if !tls.alpn.iter().any(|p| p == "h2") {
                problems.push(format!(
                    "listener {name}: TLS without ALPN h2; gRPC clients (the CLI, grpcurl) insist on it"
                ));
            }
            if tls.certificates.is_empty() {
                problems.push(format!(
                    "listener {name}: TLS with no certificate to present"
                ));
            }
        }
        match listener.stream_idle_timeout {
            Some(timeout) if timeout.is_zero() || timeout > longest_real_brew => {}
            timeout => problems.push(format!(
                "listener {name}: stream_idle_timeout {timeout:?} (None: 5 min) cuts a buzzer waiting for a drink of {longest_real_brew:?}"
            )),
        }
        for route in &listener.routes {
            let prefix = &route.prefix;
            if !envoy.clusters.contains_key(&route.cluster) {
                problems.push(format!("route {prefix}: no cluster {}", route.cluster));
            }
            if route.timeout != Some(Duration::ZERO) {
                problems.push(format!(
                    "route {prefix}: timeout {:?} (None: 15 s) would cut counter waits and buzzers; set 0s",
                    route.timeout
                ));
            }
            if !route.follows_grpc_timeout {
                problems.push(format!(
                    "route {prefix}: set max_stream_duration.grpc_timeout_header_max, so the client's deadline holds"
                ));
            }
            let Some(method_or_service) = prefix.strip_prefix('/').filter(|p| !p.is_empty()) else {
                // The catch-all.
                check_retry(route, &methods, &mut problems);
                continue;
            };
            let names_a_method = methods.iter().any(|method| method == prefix);
            let names_a_service = method_or_service.ends_with('/')
                && !method_or_service
                    .starts_with(cafe_domain::proto::v1::cafe_server::SERVICE_NAME);
            if !names_a_method && !names_a_service {
                problems.push(format!("route {prefix}: no such method in cafe.proto"));
            }
            check_retry(route, &methods, &mut problems);
        }
        for method in &methods {
            if !listener
                .routes
                .iter()
                .any(|r| method.starts_with(&r.prefix))
            {
                problems.push(format!("listener {name}: no route for {method}"));
            }
        }
    }
    if envoy.clusters.is_empty() {
        problems.push("no cluster".into());
    }
    for cluster in envoy.clusters.values() {
        let name = &cluster.name;
        if cluster.kind != "STRICT_DNS" {
            problems.push(format!(
                "cluster {name}: type {}; STRICT_DNS makes a host of every address the name resolves to (every café replica)",
                cluster.kind
            ));
        }
        if cluster.endpoints.is_empty() {
            problems.push(format!("cluster {name}: no endpoint"));
        }
        if !cluster.http2 {
            problems.push(format!(
                "cluster {name}: gRPC needs HTTP/2 upstream (explicit_http_config.http2_protocol_options)"
            ));
        }
        match &cluster.grpc_health_service {
            Some(service) if service == cafe_domain::proto::v1::cafe_server::SERVICE_NAME => {}
            other => problems.push(format!(
                "cluster {name}: grpc_health_check for {other:?}; the café reports {}",
                cafe_domain::proto::v1::cafe_server::SERVICE_NAME
            )),
        }
        if let Some(tls) = &cluster.tls {
            if tls.alpn != ["h2"] {
                problems.push(format!(
                    "cluster {name}: TLS ALPN {:?}; offer only h2, the cafés speak nothing else",
                    tls.alpn
                ));
            }
            if tls.trusted_ca.is_none() {
                problems.push(format!(
                    "cluster {name}: TLS without validation_context.trusted_ca accepts any café's certificate"
                ));
            }
            for (host, _) in &cluster.endpoints {
                if tls.sni.as_deref() != Some(host) {
                    problems.push(format!(
                        "cluster {name}: SNI {:?}; ask for {host}, the name the café's certificate has",
                        tls.sni
                    ));
                }
                if tls.accepted_names != [host.clone()] {
                    problems.push(format!(
                        "cluster {name}: accepts certificates for {:?}; match_typed_subject_alt_names should be DNS exact {host}",
                        tls.accepted_names
                    ));
                }
            }
        }
        if cluster.panic_threshold != Some(0.0) {
            problems.push(format!(
                "cluster {name}: healthy_panic_threshold {:?} (None: 50 %); set 0, so no call goes to a café that says NOT_SERVING",
                cluster.panic_threshold
            ));
        }
    }
    problems
}

/// A route that retries after the café read the call matches no call that
/// changes something.
fn check_retry(route: &Route, methods: &[String], problems: &mut Vec<String>) {
    let risky: Vec<&String> = route
        .retry_on
        .iter()
        .filter(|on| AFTER_THE_CAFE_READ_IT.contains(&on.as_str()))
        .collect();
    if risky.is_empty() {
        return;
    }
    for method in methods {
        let changes = CHANGES_SOMETHING
            .iter()
            .any(|name| method.ends_with(&format!("/{name}")));
        if changes && method.starts_with(&route.prefix) {
            problems.push(format!(
                "route {}: retries {method} on {risky:?}; it may already have changed the line",
                route.prefix
            ));
        }
    }
}
