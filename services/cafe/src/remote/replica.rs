//! One barista replica as the balancer sees it: a tower [`Service`] that
//! starts a `Brew` call, with a [`Load`] (its brews in flight) for the
//! power-of-two-choices pick, and a readiness that a failure detector can
//! turn off.
//!
//! The balancer ([`tower::balance::p2c::Balance`]) only *chooses*: it calls
//! `poll_ready` on two random replicas, compares their `load()`, and calls
//! the lighter one. So `call` does no I/O itself; it counts the brew in and
//! hands back the future of the gRPC call, which the dispatcher awaits after
//! letting go of the balancer.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use cafe_core::{
    propagation::{self, GrpcClientTrace},
    proto::v1::{self as pb, barista_client::BaristaClient},
};
use futures::future::BoxFuture;
use tokio::{sync::Notify, time::Instant};
use tonic::{Response, Status, Streaming, transport::Channel};
use tower::{Service, load::Load};

/// What the café knows about one replica address, shared by its health
/// watcher, the balancer's copy of it and every brew running on it.
#[derive(Debug)]
pub(crate) struct ReplicaState {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Whether its health says SERVING and no brew has seen it fail since.
    /// While false, `poll_ready` fails and the balancer drops it.
    pub(crate) up: AtomicBool,
    /// Brews started on it and not yet over: the p2c load.
    in_flight: AtomicUsize,
    /// Tells the health watcher to look again at once (a brew failed).
    pub(crate) suspect: Notify,
}

impl ReplicaState {
    pub(crate) fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(ReplicaState {
            addr,
            up: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            suspect: Notify::new(),
        })
    }
}

/// One brew for the balancer to place: the request, and when the customer
/// stops waiting.
#[derive(Debug, Clone)]
pub(crate) struct BrewJob {
    pub(crate) request: pb::BrewRequest,
    pub(crate) deadline: Option<Instant>,
}

/// A brew placed on a replica: which one, the gRPC call to await, and the
/// replica's load counter, held until the brew is over.
pub(crate) struct BrewCall {
    pub(crate) replica: Arc<ReplicaState>,
    pub(crate) response: BoxFuture<'static, Result<Response<Streaming<pb::BrewEvent>>, Status>>,
    pub(crate) in_flight: InFlight,
}

/// Counts one brew in the replica's load while it lives.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ReplicaState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The replica's balancer entry.
#[derive(Clone)]
pub(crate) struct Replica {
    state: Arc<ReplicaState>,
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
}

/// The replica was found down: the balancer drops it until its health
/// watcher puts it back.
#[derive(Debug, thiserror::Error)]
#[error("the barista at {0} is down")]
pub(crate) struct ReplicaDown(SocketAddr);

impl Service<BrewJob> for Replica {
    type Response = BrewCall;
    type Error = ReplicaDown;
    type Future = Ready<Result<BrewCall, ReplicaDown>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ReplicaDown>> {
        // p2c checks the chosen replica once more right before calling it,
        // so a replica marked down a moment ago (a brew on it just failed)
        // is never picked for the retry.
        if self.state.up.load(Ordering::Acquire) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(ReplicaDown(self.state.addr)))
        }
    }

    fn call(&mut self, job: BrewJob) -> Self::Future {
        // Counted now, while the dispatcher still holds the balancer, so the
        // next pick already sees this replica as busier.
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(Arc::clone(&self.state));
        let mut request = tonic::Request::new(job.request);
        if let Some(deadline) = job.deadline {
            // Deadline propagation: the barista gets what is left of the
            // customer's time (`grpc-timeout`), and stops brewing when it runs
            // out even if the café were not there to tell it.
            request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let mut client = self.client.clone();
        // The call starts when the dispatcher first polls this future, inside
        // the attempt's span: that span is the client span's parent.
        ready(Ok(BrewCall {
            replica: Arc::clone(&self.state),
            response: Box::pin(async move { client.brew(request).await }),
            in_flight,
        }))
    }
}

impl Load for Replica {
    type Metric = usize;

    fn load(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }
}

/// What the health watchers tell the balancer: a replica to add (or
/// replace) under its address, or an address to drop. The stream never
/// fails, hence `Infallible`.
pub(crate) type ReplicaChange = Result<tower::discover::Change<SocketAddr, Replica>, Infallible>;
