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
//!   stream open on the replica. SERVING puts the replica in the balancer;
//!   NOT_SERVING (it is shutting down), a broken stream (it died) or a brew
//!   that failed on it takes it out, and the watcher tries again with a
//!   growing pause. A stream, not polling: a replica that dies is noticed
//!   the moment its connection drops.
//!
//! The [`Registry`] is where their news meets: it feeds the balancer's
//! discovery channel, counts the replicas up, and while none is, tells the
//! café's [`Availability`] so, which refuses new orders and turns the café's
//! health NOT_SERVING.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering},
    time::Duration,
};

use cafe_core::proto::v1::barista_server::SERVICE_NAME as BARISTA_SERVICE;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::discover::Change;
use tracing::{info, warn};

use super::replica::{Replica, ReplicaChange, ReplicaState};
use crate::availability::Availability;

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

/// Which replicas are up, shared by the watchers and the dispatchers.
#[derive(Debug)]
pub(crate) struct Registry {
    /// The balancer's discovery stream (unbounded: a send never waits, so
    /// it can happen under the lock and in `Drop`-like paths).
    changes: mpsc::UnboundedSender<ReplicaChange>,
    /// A std mutex: held for a counter update and a channel send, never
    /// across `.await`.
    state: Mutex<RegistryState>,
    /// Told when the first replica comes up and the last goes down.
    availability: Arc<Availability>,
    /// The endpoints, for messages ("no barista reachable at …").
    endpoints: String,
}

#[derive(Debug)]
struct RegistryState {
    up: usize,
    /// Since when no replica has been up; `None` while one is.
    down_since: Option<Instant>,
}

impl Registry {
    pub(crate) fn new(
        changes: mpsc::UnboundedSender<ReplicaChange>,
        availability: Arc<Availability>,
        endpoints: &[BaristaEndpoint],
    ) -> Self {
        let endpoints = endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let registry = Registry {
            changes,
            state: Mutex::new(RegistryState {
                up: 0,
                down_since: Some(Instant::now()),
            }),
            availability,
            endpoints,
        };
        // None is up until a health watcher says so.
        registry.availability.no_barista(registry.no_barista());
        registry
    }

    fn lock(&self) -> MutexGuard<'_, RegistryState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many replicas are up now.
    pub(crate) fn up(&self) -> usize {
        self.lock().up
    }

    fn no_barista(&self) -> String {
        format!("no barista reachable at {}", self.endpoints)
    }

    /// When a dispatcher waiting for a replica should give up: `wait` after
    /// the last replica went down (or from now, if one is up). Measured from
    /// the outage, so orders still in line fail together instead of one
    /// `wait` after another.
    pub(crate) fn give_up_at(&self, wait: Duration) -> Instant {
        self.lock().down_since.unwrap_or_else(Instant::now) + wait
    }

    /// The replica answers SERVING: into the balancer it goes.
    fn mark_up(&self, replica: &Arc<ReplicaState>, channel: &Channel) {
        let mut state = self.lock();
        if replica.up.swap(true, Ordering::AcqRel) {
            return;
        }
        info!(replica = %replica.addr, "barista replica up");
        // Insert under an address already present replaces the old entry.
        let _ = self.changes.send(Ok(Change::Insert(
            replica.addr,
            Replica::new(Arc::clone(replica), channel.clone()),
        )));
        state.up += 1;
        if state.up == 1 {
            state.down_since = None;
            self.availability.barista_reachable();
        }
    }

    /// The replica is gone, shutting down or suspect: out of the balancer.
    /// Returns whether it was up.
    fn mark_down(&self, replica: &ReplicaState, why: &str) -> bool {
        let mut state = self.lock();
        // Flipped under the lock and before the `Remove` is sent: from here
        // on `poll_ready` fails, so no retry can land on it.
        if !replica.up.swap(false, Ordering::AcqRel) {
            return false;
        }
        warn!(replica = %replica.addr, why, "barista replica down");
        let _ = self.changes.send(Ok(Change::Remove(replica.addr)));
        state.up -= 1;
        if state.up == 0 {
            state.down_since = Some(Instant::now());
            self.availability.no_barista(self.no_barista());
        }
        true
    }

    /// A brew on this replica failed: take it out now, and have its watcher
    /// look again at once (if it is fine after all, it is back in a moment).
    pub(crate) fn suspect(&self, replica: &ReplicaState, why: &str) {
        self.mark_down(replica, why);
        replica.suspect.notify_one();
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
    // The config was checked at start (`cafe_core::serving::tls::client_tls`);
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

/// Watches the replica's health until it stops serving; returns why.
async fn watch_health(
    registry: &Registry,
    replica: &Arc<ReplicaState>,
    channel: &Channel,
) -> String {
    let mut health = HealthClient::new(channel.clone());
    let request = HealthCheckRequest {
        service: BARISTA_SERVICE.to_owned(),
    };
    let mut statuses = match health.watch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return format!("unreachable: {}", status.message()),
    };
    loop {
        match statuses.message().await {
            Ok(Some(update)) if update.status == ServingStatus::Serving as i32 => {
                registry.mark_up(replica, channel);
            }
            // Ending the watch (dropping the stream) also lets a replica
            // that is shutting down close its connection without waiting.
            Ok(Some(_)) => return "it is not serving (shutting down?)".to_owned(),
            Ok(None) => return "its health stream ended".to_owned(),
            Err(status) => return format!("it went away: {}", status.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use cafe_core::order::NewOrder;

    use super::*;
    use crate::{
        book::{OrderBook, Origin},
        error::CafeError,
    };

    fn latte() -> NewOrder {
        NewOrder::parse("Ada", "latte", Ok(None), "").unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn orders_are_refused_while_no_replica_is_up() {
        let availability = Arc::new(Availability::new());
        let book = OrderBook::new(10, Arc::clone(&availability));
        let place = || book.place(latte(), Origin::default());
        let (changes, mut discovered) = mpsc::unbounded_channel();
        let endpoint: BaristaEndpoint = "127.0.0.1:9".parse().unwrap();
        let registry = Registry::new(changes, Arc::clone(&availability), &[endpoint]);
        let wait = Duration::from_secs(5);

        // Nobody up yet: refused, and a waiting order gives up 5 s from now.
        let refused = place().unwrap_err();
        assert!(matches!(&refused, CafeError::NoBarista(why) if why.contains("127.0.0.1:9")));
        assert_eq!(registry.give_up_at(wait), Instant::now() + wait);

        let replica = ReplicaState::new("127.0.0.1:9".parse().unwrap());
        let channel = Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        registry.mark_up(&replica, &channel);
        assert!(matches!(discovered.try_recv(), Ok(Ok(Change::Insert(..)))));
        assert!(place().is_ok());

        // A brew fails on it an hour later: out of the balancer at once, and
        // the wait is counted from this outage, not from the first one.
        tokio::time::advance(Duration::from_secs(3600)).await;
        registry.suspect(&replica, "a brew failed");
        assert!(matches!(discovered.try_recv(), Ok(Ok(Change::Remove(_)))));
        assert!(matches!(place(), Err(CafeError::NoBarista(_))));
        assert_eq!(registry.give_up_at(wait), Instant::now() + wait);
        // Marking it down twice changes nothing.
        assert!(!registry.mark_down(&replica, "again"));
        assert!(discovered.try_recv().is_err());
    }

    #[test]
    fn endpoints_are_read_with_or_without_scheme() {
        let read = |s: &str| s.parse::<BaristaEndpoint>().map(|e| e.to_string());
        assert_eq!(read("http://127.0.0.1:50061").unwrap(), "127.0.0.1:50061");
        assert_eq!(read("barista:50061").unwrap(), "barista:50061");
        assert_eq!(read("http://[::1]:50061/").unwrap(), "[::1]:50061");
        for bad in [
            "barista",
            "http://barista",
            "barista:port",
            ":50061",
            "https://x/y:1",
        ] {
            assert!(read(bad).is_err(), "{bad} was accepted");
        }
    }
}
