//! Envoy's configuration, parsed as far as the checks need it: listeners
//! and their routes, clusters, and the TLS on either side.

use std::{collections::BTreeMap, time::Duration};

use serde_norway::Value;

/// Envoy's configuration, as far as these checks need it.
#[derive(Debug, Default)]
pub(crate) struct Envoy {
    pub(crate) admin_port: Option<u16>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) clusters: BTreeMap<String, Cluster>,
}

#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) name: String,
    pub(crate) port: u16,
    /// None: Envoy's default (5 minutes).
    pub(crate) stream_idle_timeout: Option<Duration>,
    pub(crate) routes: Vec<Route>,
    /// The TLS it ends (a `DownstreamTlsContext`), if any.
    pub(crate) tls: Option<Tls>,
}

/// One side's TLS, downstream (the certificate Envoy presents) or upstream
/// (what it checks the café's against).
#[derive(Debug, Default)]
pub(crate) struct Tls {
    pub(crate) alpn: Vec<String>,
    /// Downstream: the certificate and key files presented.
    pub(crate) certificates: Vec<(String, String)>,
    /// Upstream: the CA file, the SNI asked for, the exact DNS names accepted.
    pub(crate) trusted_ca: Option<String>,
    pub(crate) sni: Option<String>,
    pub(crate) accepted_names: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) prefix: String,
    pub(crate) cluster: String,
    /// None: Envoy's default (15 s).
    pub(crate) timeout: Option<Duration>,
    pub(crate) follows_grpc_timeout: bool,
    pub(crate) retry_on: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) endpoints: Vec<(String, u16)>,
    pub(crate) http2: bool,
    pub(crate) grpc_health_service: Option<String>,
    pub(crate) panic_threshold: Option<f64>,
    /// The TLS it opens to each café (an `UpstreamTlsContext`), if any.
    pub(crate) tls: Option<Tls>,
}

impl Envoy {
    pub(crate) fn parse(text: &str) -> Result<Envoy, String> {
        let root: Value = serde_norway::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        let mut envoy = Envoy {
            admin_port: root
                .get("admin")
                .and_then(|admin| port_of(admin.get("address")?)),
            ..Envoy::default()
        };
        let resources = root.get("static_resources").ok_or("no static_resources")?;
        for listener in seq(resources.get("listeners")) {
            let name = text_at(&listener, &["name"]).unwrap_or_default();
            let port = listener
                .get("address")
                .and_then(port_of)
                .ok_or(format!("listener {name}: no port"))?;
            let mut parsed = Listener {
                name: name.clone(),
                port,
                stream_idle_timeout: None,
                routes: Vec::new(),
                tls: None,
            };
            for chain in seq(listener.get("filter_chains")) {
                if let Some(socket) = chain.get("transport_socket") {
                    parsed.tls = Some(tls_of(socket));
                }
                for filter in seq(chain.get("filters")) {
                    let Some(hcm) = filter.get("typed_config") else {
                        continue;
                    };
                    parsed.stream_idle_timeout = hcm.get("stream_idle_timeout").and_then(duration);
                    let hosts = hcm
                        .get("route_config")
                        .and_then(|config| config.get("virtual_hosts"));
                    for host in seq(hosts) {
                        for route in seq(host.get("routes")) {
                            let prefix = route
                                .get("match")
                                .and_then(|m| m.get("prefix"))
                                .and_then(Value::as_str)
                                .ok_or(format!("listener {name}: a route without a prefix"))?;
                            let action = route
                                .get("route")
                                .ok_or(format!("route {prefix}: no route action"))?;
                            parsed.routes.push(Route {
                                prefix: prefix.to_owned(),
                                cluster: text_at(action, &["cluster"]).unwrap_or_default(),
                                timeout: action.get("timeout").and_then(duration),
                                follows_grpc_timeout: action
                                    .get("max_stream_duration")
                                    .and_then(|m| m.get("grpc_timeout_header_max"))
                                    .is_some(),
                                retry_on: text_at(action, &["retry_policy", "retry_on"])
                                    .unwrap_or_default()
                                    .split(',')
                                    .map(|s| s.trim().to_owned())
                                    .filter(|s| !s.is_empty())
                                    .collect(),
                            });
                        }
                    }
                }
            }
            envoy.listeners.push(parsed);
        }
        for cluster in seq(resources.get("clusters")) {
            let name = text_at(&cluster, &["name"]).ok_or("a cluster without a name")?;
            let mut endpoints = Vec::new();
            for group in seq(cluster
                .get("load_assignment")
                .and_then(|a| a.get("endpoints")))
            {
                for endpoint in seq(group.get("lb_endpoints")) {
                    let address = endpoint
                        .get("endpoint")
                        .and_then(|e| e.get("address"))
                        .and_then(|a| a.get("socket_address"))
                        .ok_or(format!("cluster {name}: an endpoint without an address"))?;
                    let host = text_at(address, &["address"]).unwrap_or_default();
                    let port = address
                        .get("port_value")
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or(format!("cluster {name}: {host} without a port"))?;
                    endpoints.push((host, port));
                }
            }
            let http2 = cluster
                .get("typed_extension_protocol_options")
                .and_then(|o| o.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"))
                .and_then(|o| o.get("explicit_http_config"))
                .and_then(|o| o.get("http2_protocol_options"))
                .is_some();
            let grpc_health_service = seq(cluster.get("health_checks")).iter().find_map(|check| {
                let grpc = check.get("grpc_health_check")?;
                Some(text_at(grpc, &["service_name"]).unwrap_or_default())
            });
            let panic_threshold = cluster
                .get("common_lb_config")
                .and_then(|c| c.get("healthy_panic_threshold"))
                .and_then(|t| t.get("value"))
                .and_then(Value::as_f64);
            envoy.clusters.insert(
                name.clone(),
                Cluster {
                    name,
                    kind: text_at(&cluster, &["type"]).unwrap_or_default(),
                    endpoints,
                    http2,
                    grpc_health_service,
                    panic_threshold,
                    tls: cluster.get("transport_socket").map(tls_of),
                },
            );
        }
        Ok(envoy)
    }

    pub(crate) fn listener_ports(&self) -> Vec<u16> {
        self.listeners.iter().map(|l| l.port).collect()
    }

    /// The TLS of each listener, with its port.
    pub(crate) fn listener_tls(&self) -> Vec<(u16, Option<&Tls>)> {
        self.listeners
            .iter()
            .map(|l| (l.port, l.tls.as_ref()))
            .collect()
    }
}

/// A `transport_socket` read as TLS (another kind yields an empty [`Tls`],
/// which the checks refuse for its missing ALPN).
pub(crate) fn tls_of(socket: &Value) -> Tls {
    let Some(context) = socket.get("typed_config") else {
        return Tls::default();
    };
    let common = context.get("common_tls_context");
    let validation = common.and_then(|c| c.get("validation_context"));
    Tls {
        alpn: seq(common.and_then(|c| c.get("alpn_protocols")))
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
        certificates: seq(common.and_then(|c| c.get("tls_certificates")))
            .iter()
            .map(|pair| {
                (
                    text_at(pair, &["certificate_chain", "filename"]).unwrap_or_default(),
                    text_at(pair, &["private_key", "filename"]).unwrap_or_default(),
                )
            })
            .collect(),
        trusted_ca: validation.and_then(|v| text_at(v, &["trusted_ca", "filename"])),
        sni: text_at(context, &["sni"]),
        accepted_names: seq(validation.and_then(|v| v.get("match_typed_subject_alt_names")))
            .iter()
            .filter(|m| text_at(m, &["san_type"]).as_deref() == Some("DNS"))
            .filter_map(|m| text_at(m, &["matcher", "exact"]))
            .collect(),
    }
}

pub(crate) fn seq(value: Option<&Value>) -> Vec<Value> {
    value
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn text_at(value: &Value, path: &[&str]) -> Option<String> {
    let mut value = value;
    for key in path {
        value = value.get(*key)?;
    }
    value.as_str().map(str::to_owned)
}

pub(crate) fn port_of(address: &Value) -> Option<u16> {
    address
        .get("socket_address")?
        .get("port_value")?
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
}

/// Envoy's durations are protobuf `Duration`s in JSON form: "3600s", "0.5s".
pub(crate) fn duration(value: &Value) -> Option<Duration> {
    let seconds: f64 = value.as_str()?.strip_suffix('s')?.parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
}
