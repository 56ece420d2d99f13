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
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use cafe_domain::proto::v1::{
    self as pb, barista_client::BaristaClient, barista_server::SERVICE_NAME as BARISTA_SERVICE,
};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tracing::{info, warn};

use super::replica::{Replica, ReplicaState, Slot};
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

/// Which replicas are up and how busy, shared by the watchers and the
/// dispatcher.
pub(crate) struct Registry {
    /// A std mutex: held to look over the replicas up and take a slot, or
    /// to add or drop one, never across `.await`.
    state: Mutex<RegistryState>,
    /// Rung (`notify_waiters`) whenever a barista may have come free: a
    /// replica up, a slot given back, a station read again. Whoever waits
    /// for a slot registers before looking, so no ring is missed.
    freed: Arc<Notify>,
    /// Drinks in hand waiting for a barista again (retries): while any
    /// does, the dispatcher takes none, so they go first.
    retries: Arc<AtomicUsize>,
    /// Told when the first replica comes up and the last goes down.
    availability: Arc<Availability>,
    /// The endpoints, for messages ("no barista reachable at …").
    endpoints: String,
}

struct RegistryState {
    /// The replicas up, by address.
    up: HashMap<SocketAddr, Replica>,
    /// Whose turn it is among replicas equally free.
    turn: usize,
    /// Since when no replica has been up; `None` while one is.
    down_since: Option<Instant>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("endpoints", &self.endpoints)
            .field("up", &self.up())
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub(crate) fn new(availability: Arc<Availability>, endpoints: &[BaristaEndpoint]) -> Self {
        let endpoints = endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let registry = Registry {
            state: Mutex::new(RegistryState {
                up: HashMap::new(),
                turn: 0,
                down_since: Some(Instant::now()),
            }),
            freed: Arc::new(Notify::new()),
            retries: Arc::new(AtomicUsize::new(0)),
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
        self.lock().up.len()
    }

    /// The baristas of the replicas up, and how many of them this café may
    /// still give a drink to.
    pub(crate) fn slots(&self) -> (usize, usize) {
        let state = self.lock();
        state.up.values().fold((0, 0), |(all, free), replica| {
            (all + replica.state.capacity(), free + replica.state.free())
        })
    }

    /// The bell rung whenever a barista may have come free.
    pub(crate) fn freed(&self) -> &Notify {
        &self.freed
    }

    /// Counts a drink in hand waiting for a barista, until the guard drops.
    pub(crate) fn retry_waiting(&self) -> RetryWaiting {
        self.retries.fetch_add(1, Ordering::AcqRel);
        RetryWaiting {
            retries: Arc::clone(&self.retries),
            freed: Arc::clone(&self.freed),
        }
    }

    /// Whether a drink in hand waits for a barista.
    pub(crate) fn retries_waiting(&self) -> bool {
        self.retries.load(Ordering::Acquire) > 0
    }

    /// A free barista on the replica with the most of them, if any replica
    /// has one. Looking at every replica (there are a handful) beats
    /// sampling two, as power of two choices would: the café *knows* each
    /// one's free baristas, so it can simply take the best.
    pub(crate) fn try_reserve(&self) -> Option<Slot> {
        let mut state = self.lock();
        // Each replica's free baristas read once: a brew ending elsewhere
        // frees one without this lock, so reading them twice (once for the
        // most, once to find who has it) could find nobody, and a turn
        // modulo no replica at all panicked the dispatcher (seen in the
        // soak, a barista replica killed under load).
        let free: Vec<(&Replica, usize)> = state
            .up
            .values()
            .map(|replica| (replica, replica.state.free()))
            .collect();
        let most = free.iter().map(|&(_, free)| free).max()?;
        if most == 0 {
            return None;
        }
        // Ties (the usual case: replicas of one size, equally busy) take
        // turns, in address order, so single orders spread too.
        let mut best: Vec<&Replica> = free
            .into_iter()
            .filter(|&(_, free)| free == most)
            .map(|(replica, _)| replica)
            .collect();
        best.sort_by_key(|replica| replica.state.addr);
        let chosen = best[state.turn % best.len()].clone();
        state.turn = state.turn.wrapping_add(1);
        // Taken under the lock: no other reservation sees this barista free.
        Some(chosen.reserve(&self.freed))
    }

    /// Some time after no replica is up, a dispatcher stops waiting for
    /// one: when, or `None` while one is up (then it waits as long as it
    /// takes for a free barista).
    pub(crate) fn give_up_time(&self, wait: Duration) -> Option<Instant> {
        self.lock().down_since.map(|since| since + wait)
    }

    /// A replica's station was read again: ring the bell if it has a
    /// barista free.
    pub(crate) fn station_read(&self, replica: &ReplicaState, station: &pb::Station) {
        replica.station_read(station);
        if !replica.is_full() {
            self.freed.notify_waiters();
        }
    }

    fn no_barista(&self) -> String {
        format!("no barista reachable at {}", self.endpoints)
    }

    /// The replica answers SERVING and its station was read: its baristas
    /// may be given drinks.
    fn mark_up(&self, replica: &Arc<ReplicaState>, channel: &Channel) {
        let mut state = self.lock();
        if replica.up.swap(true, Ordering::AcqRel) {
            return;
        }
        info!(replica = %replica.addr, baristas = replica.capacity(), "barista replica up");
        state.up.insert(
            replica.addr,
            Replica::new(Arc::clone(replica), channel.clone()),
        );
        if state.up.len() == 1 {
            state.down_since = None;
            self.availability.barista_reachable();
        }
        self.freed.notify_waiters();
    }

    /// The replica is gone, shutting down or suspect: out of the balancer.
    /// Returns whether it was up.
    fn mark_down(&self, replica: &ReplicaState, why: &str) -> bool {
        let mut state = self.lock();
        // Flipped and removed under the lock: from here on no slot is taken
        // on it, so no retry can land on it.
        if !replica.up.swap(false, Ordering::AcqRel) {
            return false;
        }
        warn!(replica = %replica.addr, why, "barista replica down");
        state.up.remove(&replica.addr);
        if state.up.is_empty() {
            state.down_since = Some(Instant::now());
            self.availability.no_barista(self.no_barista());
        }
        // A dispatcher waiting for a barista must see the outage begin, to
        // give up `--barista-wait` after it.
        self.freed.notify_waiters();
        true
    }

    /// A brew on this replica failed: take it out now, and have its watcher
    /// look again at once (if it is fine after all, it is back in a moment).
    /// Its slots still held are given back as their brews end.
    pub(crate) fn suspect(&self, replica: &ReplicaState, why: &str) {
        self.mark_down(replica, why);
        replica.suspect.notify_one();
    }
}

/// A retry waiting for a barista (see [`Registry::retry_waiting`]).
pub(crate) struct RetryWaiting {
    retries: Arc<AtomicUsize>,
    freed: Arc<Notify>,
}

impl Drop for RetryWaiting {
    fn drop(&mut self) {
        self.retries.fetch_sub(1, Ordering::AcqRel);
        // The dispatcher may take baristas again.
        self.freed.notify_waiters();
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

#[cfg(test)]
mod tests {
    use cafe_domain::order::NewOrder;

    use super::*;
    use crate::{
        book::{OrderBook, Origin},
        error::CafeError,
    };

    fn latte() -> NewOrder {
        NewOrder::parse("Ada", "latte", Ok(None), "").unwrap()
    }

    fn station(baristas: u32, busy: u32) -> pb::Station {
        pb::Station {
            name: "b".to_owned(),
            baristas,
            busy,
            time_scale: 1.0,
        }
    }

    /// A replica at `addr` with `baristas`, up in `registry`.
    fn up(registry: &Registry, addr: &str, baristas: u32) -> Arc<ReplicaState> {
        let replica = ReplicaState::new(addr.parse().unwrap());
        registry.station_read(&replica, &station(baristas, 0));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        registry.mark_up(&replica, &channel);
        replica
    }

    fn registry(availability: &Arc<Availability>) -> Registry {
        let endpoint: BaristaEndpoint = "127.0.0.1:9".parse().unwrap();
        Registry::new(Arc::clone(availability), &[endpoint])
    }

    #[tokio::test(start_paused = true)]
    async fn orders_are_refused_while_no_replica_is_up() {
        let availability = Arc::new(Availability::new());
        let book = OrderBook::new(10, Arc::clone(&availability));
        let place = || book.place(latte(), Origin::default());
        let registry = registry(&availability);
        let wait = Duration::from_secs(5);

        // Nobody up yet: refused, and a waiting order gives up 5 s from now.
        let refused = place().unwrap_err();
        assert!(matches!(&refused, CafeError::NoBarista(why) if why.contains("127.0.0.1:9")));
        assert_eq!(registry.give_up_time(wait), Some(Instant::now() + wait));

        let replica = up(&registry, "127.0.0.1:9", 1);
        assert_eq!(registry.up(), 1);
        assert_eq!(registry.give_up_time(wait), None, "one is up: no giving up");
        assert!(place().is_ok());

        // A brew fails on it an hour later: out of the registry at once, and
        // the wait is counted from this outage, not from the first one.
        tokio::time::advance(Duration::from_secs(3600)).await;
        registry.suspect(&replica, "a brew failed");
        assert_eq!(registry.up(), 0);
        assert!(registry.try_reserve().is_none());
        assert!(matches!(place(), Err(CafeError::NoBarista(_))));
        assert_eq!(registry.give_up_time(wait), Some(Instant::now() + wait));
        // Marking it down twice changes nothing.
        assert!(!registry.mark_down(&replica, "again"));
    }

    #[tokio::test]
    async fn slots_are_the_free_baristas_and_a_full_replica_counts_none() {
        let availability = Arc::new(Availability::new());
        let registry = registry(&availability);
        let one = up(&registry, "127.0.0.1:9", 2);
        let three = up(&registry, "127.0.0.1:10", 3);
        assert_eq!(registry.slots(), (5, 5));

        // The replica with the most free baristas first, then the other.
        let first = registry.try_reserve().unwrap();
        assert_eq!(first.replica().addr, three.addr);
        let mut held: Vec<Slot> = (0..4).map(|_| registry.try_reserve().unwrap()).collect();
        assert_eq!(registry.slots(), (5, 0));
        assert!(
            registry.try_reserve().is_none(),
            "no more than its baristas"
        );

        // A slot given back is free again, and the bell rings for it.
        let freed = registry.freed().notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        drop(first);
        freed.await;
        assert_eq!(registry.slots(), (5, 1));

        // Turned away (another café keeps it busy): none of its baristas
        // count, until one of our brews there ends...
        let on_one = held
            .iter()
            .position(|slot| slot.replica().addr == one.addr)
            .unwrap();
        let on_one = held.remove(on_one);
        let retry = registry.try_reserve().unwrap();
        assert_eq!(retry.replica().addr, three.addr);
        drop(retry);
        registry.try_reserve().unwrap().turned_away();
        assert!(three.is_full());
        assert_eq!(registry.slots().1, 0, "the full one counts none");
        // ...or its station, read again, shows one free.
        registry.station_read(&three, &station(3, 3));
        assert!(three.is_full());
        registry.station_read(&three, &station(3, 2));
        assert!(!three.is_full());
        assert_eq!(registry.slots().1, 1);
        // Turned away again; then one of our brews there ends: free again.
        registry.try_reserve().unwrap().turned_away();
        assert_eq!(registry.slots().1, 0);
        let on_three = held
            .iter()
            .position(|slot| slot.replica().addr == three.addr)
            .unwrap();
        drop(held.remove(on_three));
        assert!(!three.is_full());
        assert_eq!(registry.slots().1, 2);
        drop(on_one);
        drop(held);
        assert_eq!(registry.slots(), (5, 5));
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
