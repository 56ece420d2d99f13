//! The registry of remote baristas: which replicas are up, how many
//! baristas each has free, and the slots this café's brews hold. The
//! health watchers ([`super::discovery`]) write it; the dispatcher and the
//! brew tasks reserve a slot from it before they take an order.
//!
//! Whenever a slot may have come free it rings one [`Notify`] (no
//! polling), and while no replica is up it tells the café's
//! [`Availability`], which refuses new orders and turns the café's health
//! NOT_SERVING.

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use cafe_domain::proto::v1 as pb;
use tokio::{sync::Notify, time::Instant};
use tonic::transport::Channel;
use tracing::{info, warn};

use super::{
    discovery::BaristaEndpoint,
    replica::{Replica, ReplicaState, Slot},
};
use crate::availability::Availability;

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

    pub(super) fn no_barista(&self) -> String {
        format!("no barista reachable at {}", self.endpoints)
    }

    /// The replica answers SERVING and its station was read: its baristas
    /// may be given drinks.
    pub(super) fn mark_up(&self, replica: &Arc<ReplicaState>, channel: &Channel) {
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
    pub(super) fn mark_down(&self, replica: &ReplicaState, why: &str) -> bool {
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

#[cfg(test)]
mod tests;
