//! One barista replica as the café sees it: how many baristas it has (its
//! station, read with `GetStation`), how many of them this café keeps busy,
//! and a [`Slot`]: one of its baristas reserved for one brew.
//!
//! A slot is taken *before* an order leaves the café's line (see
//! [`super::RemoteBaristas::dispatch`]) and held until the brew is over, so
//! the café never has more drinks in flight on a replica than it has
//! baristas. Dropping the slot gives the barista back and wakes whoever
//! waits for one.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use cafe_domain::proto::v1::{self as pb, barista_client::BaristaClient};
use futures::future::BoxFuture;
use grpc_telemetry::propagation::{self, GrpcClientTrace};
use tokio::{sync::Notify, time::Instant};
use tonic::{Response, Status, Streaming, transport::Channel};

/// What the café knows about one replica address, shared by its health
/// watcher, the registry and every brew running on it.
#[derive(Debug)]
pub(crate) struct ReplicaState {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Whether its health says SERVING and no brew has seen it fail since.
    /// While false, no slot is taken on it.
    pub(crate) up: AtomicBool,
    /// Its baristas, as its station said when it came up.
    capacity: AtomicUsize,
    /// Slots this café holds on it: brews started (or about to start) and
    /// not yet over.
    in_flight: AtomicUsize,
    /// It answered RESOURCE_EXHAUSTED (another café keeps its baristas
    /// busy): none of its slots count as free until one of our brews on it
    /// ends or its station, read again, shows a free barista.
    full: AtomicBool,
    /// Tells the health watcher to look again at once (a brew failed).
    pub(crate) suspect: Notify,
    /// Tells the health watcher to read the station again (it was full).
    pub(crate) recheck: Notify,
}

impl ReplicaState {
    pub(crate) fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(ReplicaState {
            addr,
            up: AtomicBool::new(false),
            capacity: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            full: AtomicBool::new(false),
            suspect: Notify::new(),
            recheck: Notify::new(),
        })
    }

    /// What its station said: its size, and whether every barista was busy.
    pub(crate) fn station_read(&self, station: &pb::Station) {
        self.capacity
            .store(station.baristas as usize, Ordering::Release);
        self.full
            .store(station.busy >= station.baristas, Ordering::Release);
    }

    /// Its baristas, as last read.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Acquire)
    }

    /// Whether it turned a brew away and has not been seen free since.
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Its baristas this café may still give a drink to.
    pub(crate) fn free(&self) -> usize {
        if self.is_full() {
            return 0;
        }
        self.capacity()
            .saturating_sub(self.in_flight.load(Ordering::Acquire))
    }
}

/// One brew for a replica: the request, and when the customer stops
/// waiting.
#[derive(Debug, Clone)]
pub(crate) struct BrewJob {
    pub(crate) request: pb::BrewRequest,
    pub(crate) deadline: Option<Instant>,
}

/// A replica the registry can reserve slots on: its state and a client.
#[derive(Clone)]
pub(crate) struct Replica {
    pub(crate) state: Arc<ReplicaState>,
    /// Traced: each `Brew` call is a client span, child of the order's
    /// `brew` span, and sends `traceparent` so the barista's server span
    /// joins the customer's trace.
    client: BaristaClient<GrpcClientTrace<Channel>>,
}

impl Replica {
    pub(crate) fn new(state: Arc<ReplicaState>, channel: Channel) -> Self {
        Replica {
            state,
            client: BaristaClient::new(propagation::traced(channel)),
        }
    }

    /// Takes one of its baristas for a brew. Called by the registry under
    /// its lock, after it saw [`ReplicaState::free`] above 0, so two
    /// reservations never take the same barista.
    pub(crate) fn reserve(&self, freed: &Arc<Notify>) -> Slot {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        Slot {
            replica: self.clone(),
            freed: Arc::clone(freed),
            turned_away: false,
        }
    }
}

/// One barista of a replica, held for one brew until dropped.
pub(crate) struct Slot {
    replica: Replica,
    /// The registry's "a barista may be free" bell.
    freed: Arc<Notify>,
    /// The replica answered RESOURCE_EXHAUSTED on this slot: giving it back
    /// must not mark the replica free again.
    turned_away: bool,
}

impl Slot {
    /// The replica the slot is on.
    pub(crate) fn replica(&self) -> &Arc<ReplicaState> {
        &self.replica.state
    }

    /// Whether its replica is still up (it may have gone down while the
    /// slot waited for an order).
    pub(crate) fn is_up(&self) -> bool {
        self.replica.state.up.load(Ordering::Acquire)
    }

    /// Starts the `Brew` call. The call is made when the returned future
    /// is first polled, inside the attempt's span: that span is the client
    /// span's parent.
    pub(crate) fn brew(
        &self,
        job: BrewJob,
    ) -> BoxFuture<'static, Result<Response<Streaming<pb::BrewEvent>>, Status>> {
        let mut request = tonic::Request::new(job.request);
        if let Some(deadline) = job.deadline {
            // Deadline propagation: the barista gets what is left of the
            // customer's time (`grpc-timeout`), and stops brewing when it runs
            // out even if the café were not there to tell it.
            request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let mut client = self.replica.client.clone();
        Box::pin(async move { client.brew(request).await })
    }

    /// The replica turned the brew away (all its baristas busy, for other
    /// cafés): it counts as full until one of our brews on it ends or its
    /// station is read again, which its health watcher now does.
    pub(crate) fn turned_away(mut self) {
        self.turned_away = true;
        self.replica.state.full.store(true, Ordering::Release);
        self.replica.state.recheck.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let state = &self.replica.state;
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !self.turned_away {
            // One of our brews there ended: the barista who made it is
            // free, whoever else uses the replica.
            state.full.store(false, Ordering::Release);
        }
        // Everyone waiting for a barista looks again (a handful of tasks:
        // the dispatcher and any retries).
        self.freed.notify_waiters();
    }
}
