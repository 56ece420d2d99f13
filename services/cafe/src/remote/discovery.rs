//! Finding the barista replicas and knowing which of them are up.
//!
//! Two kinds of background task, both owned by one [`CancellationToken`]:
//!
//! - the **resolver** looks every `--barista-endpoint` up in DNS every
//!   `--barista-resolve-interval` (`tokio::net::lookup_host`). A name that
//!   resolves to several addresses (`docker compose --scale barista=3`)
//!   gives several replicas; a new address gets a watcher, a vanished one
//!   loses it. A failed lookup keeps the addresses found last time: a DNS
//!   hiccup must not empty the café.
//! - one **health watcher** per address holds a `grpc.health.v1.Health/Watch`
//!   stream open on the replica. SERVING has it read the replica's station
//!   (`GetStation`: how many baristas) and put it in the registry;
//!   NOT_SERVING (it is shutting down), a broken stream (it died) or a brew
//!   that failed on it takes it out, and the watcher tries again with a
//!   growing pause. A stream, not polling: a replica that dies is noticed
//!   the moment its connection drops. A replica that turned a brew away
//!   (full, for another café) has its station read again by its watcher,
//!   at once and then with a growing pause, until a barista is free.
//!
//! The [`Registry`] is where their news meets: it holds the replicas up and
//! reserves their baristas ([`Registry::try_reserve`]), rings a bell
//! whenever one may have come free, and while no replica is up, tells the
//! café's [`Availability`] so, which refuses new orders and turns the café's
//! health NOT_SERVING.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::SocketAddr,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use cafe_domain::proto::v1::{
    self as pb, barista_client::BaristaClient, barista_server::SERVICE_NAME as BARISTA_SERVICE,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tracing::{info, warn};

use super::{registry::Registry, replica::ReplicaState};

/// How long connecting to a replica may take before it counts as
/// unreachable (an address that drops packets instead of refusing).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on an idle connection, so a replica whose host vanished
/// without closing the connection is noticed too.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// First pause before trying an unreachable replica again; doubled up to
/// [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// First pause before reading a full replica's station again; doubled up
/// to [`RETRY_MAX`].
const RECHECK_MIN: Duration = Duration::from_millis(50);

/// A `--barista-endpoint`: a host name or IP address and a port, written
/// `host:port` or `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaristaEndpoint {
    host: String,
    port: u16,
}

impl FromStr for BaristaEndpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{s:?} is not a barista endpoint: use host:port or http://host:port, e.g. http://127.0.0.1:50061"
            )
        };
        let rest = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        // `[::1]:50061`: the brackets are URL syntax, not part of the address.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad());
        }
        Ok(BaristaEndpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BaristaEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Resolves `endpoints` every `interval` and keeps one health watcher per
/// address (over TLS with `tls`), until `stop` is cancelled.
pub(crate) async fn resolve(
    endpoints: Vec<BaristaEndpoint>,
    tls: Option<ClientTlsConfig>,
    interval: Duration,
    registry: Arc<Registry>,
    stop: CancellationToken,
) {
    // Which host name each address's certificate must carry: the
    // endpoint's, not the address it resolved to.
    let mut host_of: HashMap<SocketAddr, String> = HashMap::new();
    // What each endpoint resolved to last time it resolved at all.
    let mut resolved: HashMap<&BaristaEndpoint, Vec<SocketAddr>> = HashMap::new();
    // One watcher per address; cancelling its token ends it.
    let mut watchers: HashMap<SocketAddr, CancellationToken> = HashMap::new();
    loop {
        for endpoint in &endpoints {
            let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
            match tokio::time::timeout(interval, lookup).await {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    for addr in &addrs {
                        host_of.insert(*addr, endpoint.host.clone());
                    }
                    resolved.insert(endpoint, addrs);
                }
                Ok(Err(error)) => {
                    warn!(%endpoint, %error, "cannot resolve the barista endpoint; keeping the addresses it had");
                }
                Err(_) => {
                    warn!(%endpoint, "resolving the barista endpoint timed out; keeping the addresses it had");
                }
            }
        }
        let wanted: HashSet<SocketAddr> = resolved.values().flatten().copied().collect();
        watchers.retain(|addr, watcher| {
            let keep = wanted.contains(addr);
            if !keep {
                info!(replica = %addr, "barista address no longer resolves: dropping it");
                watcher.cancel();
            }
            keep
        });
        for addr in wanted {
            if watchers.contains_key(&addr) {
                continue;
            }
            info!(replica = %addr, "barista address found");
            let token = stop.child_token();
            watchers.insert(addr, token.clone());
            // Detached on purpose: the task ends when its token (a child of
            // `stop`) is cancelled, and tells the registry on its way out.
            let tls = tls.clone().map(|tls| {
                let host = host_of
                    .get(&addr)
                    .cloned()
                    .unwrap_or_else(|| addr.ip().to_string());
                tls.domain_name(host)
            });
            tokio::spawn(watch_replica(
                Arc::clone(&registry),
                ReplicaState::new(addr),
                tls,
                token,
            ));
        }

        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Keeps one replica's health in the registry until `stop` is cancelled.
async fn watch_replica(
    registry: Arc<Registry>,
    replica: Arc<ReplicaState>,
    tls: Option<ClientTlsConfig>,
    stop: CancellationToken,
) {
    // One channel per address for its whole life, shared by the health
    // watch and every brew on it. `connect_lazy` connects on first use and
    // reconnects after a drop, so a replica that comes back on the same
    // address is found again without building anything new.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{}", replica.addr))
        .expect("a socket address makes a valid URI");
    // The config was checked at start (`grpc_serving::tls::client_tls`);
    // what is left to fail is the host name, which no replica at this
    // address can then be trusted for.
    let endpoint = match tls {
        None => endpoint,
        Some(tls) => match endpoint.tls_config(tls) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                registry.mark_down(&replica, &format!("cannot set up TLS to it: {error}"));
                return;
            }
        },
    };
    let channel = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .connect_lazy();
    let mut pause = RETRY_MIN;
    loop {
        let why = tokio::select! {
            () = stop.cancelled() => break,
            // A brew failed here: the dispatcher has marked it down already;
            // look again straight away.
            () = replica.suspect.notified() => {
                pause = RETRY_MIN;
                continue;
            }
            why = watch_health(&registry, &replica, &channel) => why,
        };
        if registry.mark_down(&replica, &why) {
            pause = RETRY_MIN; // it was up a moment ago: try again soon
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
    registry.mark_down(&replica, "its address no longer resolves");
}

/// Watches the replica's health until it stops serving; returns why. On
/// SERVING it reads the station first (how many baristas), and while the
/// replica is full it reads the station again now and then.
async fn watch_health(
    registry: &Registry,
    replica: &Arc<ReplicaState>,
    channel: &Channel,
) -> String {
    let mut health = HealthClient::new(channel.clone());
    let mut baristas = BaristaClient::new(channel.clone());
    let request = HealthCheckRequest {
        service: BARISTA_SERVICE.to_owned(),
    };
    let mut statuses = match health.watch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return format!("unreachable: {}", status.message()),
    };
    // When to read a full replica's station again, and the pause after.
    let mut recheck_at: Option<Instant> = None;
    let mut pause = RECHECK_MIN;
    loop {
        let reread = tokio::select! {
            update = statuses.message() => match update {
                Ok(Some(update)) if update.status == ServingStatus::Serving as i32 => {
                    // Its size first: a replica counts no baristas until read.
                    match read_station(&mut baristas).await {
                        Ok(station) => registry.station_read(replica, &station),
                        Err(why) => return why,
                    }
                    registry.mark_up(replica, channel);
                    false
                }
                // Ending the watch (dropping the stream) also lets a replica
                // that is shutting down close its connection without waiting.
                Ok(Some(_)) => return "it is not serving (shutting down?)".to_owned(),
                Ok(None) => return "its health stream ended".to_owned(),
                Err(status) => return format!("it went away: {}", status.message()),
            },
            // A brew was turned away: read at once (often the barista that
            // was busy has just been freed).
            () = replica.recheck.notified() => {
                pause = RECHECK_MIN;
                true
            }
            () = sleep_until_some(recheck_at) => true,
        };
        if reread {
            recheck_at = None;
            match read_station(&mut baristas).await {
                Ok(station) => registry.station_read(replica, &station),
                Err(why) => return why,
            }
            if replica.is_full() {
                // Busy with another café's drinks: look again later.
                recheck_at = Some(Instant::now() + pause);
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Reads the replica's station, or says why it could not.
async fn read_station(baristas: &mut BaristaClient<Channel>) -> Result<pb::Station, String> {
    let mut request = tonic::Request::new(pb::GetStationRequest {});
    request.set_timeout(CONNECT_TIMEOUT);
    match baristas.get_station(request).await {
        Ok(station) => Ok(station.into_inner()),
        Err(status) => Err(format!("cannot read its station: {}", status.message())),
    }
}

/// Sleeps until `at`, or for ever if `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
