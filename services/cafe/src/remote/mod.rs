//! Remote baristas: the café as a client of `cafe-barista` replicas. It
//! knows how many baristas each replica has and keeps exactly as many
//! drinks in flight as there are free ones, so its own line stays the only
//! line; when a replica goes away, its drinks are retried on another.
//!
//! ```text
//!            ┌── GetStation on SERVING: "barista-2 has 2 baristas" ──┐
//!            ▼                                                      │
//!   Registry (replicas up, slots held) ◄── health watchers ◄── resolver (DNS)
//!      │ a free slot first…
//!      ▼
//!   dispatcher ── …then the next order from the line ──► brew task ── Brew ──► replica
//!                                           started → BREWING "barista-2/Ana", finished → READY
//! ```
//!
//! The one dispatcher ([`RemoteBaristas::dispatch`]) waits for a **slot**
//! first, a free barista on some replica up (`Registry::try_reserve`, in
//! `remote/registry.rs`), and only then takes the next order out of the
//! line: an order is QUEUED with its real place until a barista is free for
//! it. A replica full for another café answers RESOURCE_EXHAUSTED; the
//! order goes back to its place ([`Orders::put_back`]) or, already claimed
//! on a shared line, waits in its brew task for the next free slot. Each
//! attempt is a `brew` span joined to the trace of the call that placed the
//! order, and the `Brew` call carries `traceparent`. Why no balancer, and
//! the rest of the design: docs/cafe-server.md, "Remote baristas".

mod brew_stream;
mod discovery;
mod registry;
mod replica;

use std::{sync::Arc, time::Duration};

use cafe_domain::proto::v1 as pb;
use grpc_telemetry::propagation::join_trace;
use opentelemetry::context::FutureExt as _;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::ClientTlsConfig;
use tracing::{Instrument, field::Empty, info, info_span, warn};

use brew_stream::{Failure, follow};
pub use discovery::BaristaEndpoint;
use registry::Registry;
use replica::{BrewJob, Slot};

use crate::{
    availability::Availability,
    book::{OrderBook, OrderEntry},
    service::CLOSING_NOTE,
    store::Orders,
};

/// How many replicas one order may be tried on before it fails.
pub const MAX_ATTEMPTS: usize = 3;

/// How long an order whose barista gave up on the customer's deadline
/// waits for the café's own deadline to cancel it, before failing it.
const DEADLINE_SETTLE: Duration = Duration::from_secs(1);

/// How long a finished brew's stream may take to end (its trailers) before
/// the brew task stops waiting and gives the barista back.
pub(super) const TRAILERS_WAIT: Duration = Duration::from_millis(500);

/// How the café finds and uses its remote baristas.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// `--barista-endpoint`.
    pub endpoints: Vec<BaristaEndpoint>,
    /// `--barista-resolve-interval`.
    pub resolve_interval: Duration,
    /// `--barista-wait`.
    pub wait: Duration,
    /// `--barista-ca` (and the client certificate, for mutual TLS): TLS to
    /// every replica, checking its certificate against the endpoint's host
    /// name. `None`: plaintext.
    pub tls: Option<ClientTlsConfig>,
}

/// The café's handle on its remote baristas; cheap to clone (the
/// dispatcher and each brew task hold one). The background tasks stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct RemoteBaristas {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    wait: Duration,
    /// Cancels the resolver and the health watchers when the café is done
    /// with its baristas.
    _stop: DropGuard,
}

impl std::fmt::Debug for RemoteBaristas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBaristas")
            .field("wait", &self.inner.wait)
            .finish_non_exhaustive()
    }
}

impl RemoteBaristas {
    /// Starts finding the replicas. Until one is up, and whenever none is,
    /// `availability` says no barista can be reached: new orders get
    /// UNAVAILABLE and the café's health is NOT_SERVING.
    pub fn start(availability: &Arc<Availability>, config: RemoteConfig) -> Self {
        let stop = CancellationToken::new();
        let registry = Arc::new(Registry::new(Arc::clone(availability), &config.endpoints));

        tokio::spawn(discovery::resolve(
            config.endpoints,
            config.tls,
            config.resolve_interval,
            Arc::clone(&registry),
            stop.clone(),
        ));

        RemoteBaristas {
            inner: Arc::new(Inner {
                registry,
                wait: config.wait,
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// The café's one dispatcher: a free barista first, then the next
    /// order, handed to a brew task of its own; again and again until the
    /// café closes. Then it waits for the drinks in hand.
    ///
    /// With no replica up for `--barista-wait`, the orders still in line
    /// are taken and failed (UNAVAILABLE for their customers), all
    /// together, rather than left waiting for a barista who may never come.
    pub async fn dispatch(&self, orders: Orders) {
        let book = orders.book();
        // The brew tasks: owned here, so the shutdown waiting for the
        // dispatcher waits for them, and aborting it aborts them.
        let mut brews = JoinSet::new();
        let claimer: Arc<str> = Arc::from("remote dispatcher");
        loop {
            // Reap the finished ones, so the set holds only brews in hand.
            while brews.try_join_next().is_some() {}
            // 1. An order waiting, then a free barista somewhere for it,
            // before it leaves the line.
            tokio::select! {
                biased;
                () = book.closed() => break,
                () = until_order_waiting(book) => {}
            }
            let slot = tokio::select! {
                biased;
                () = book.closed() => break,
                slot = self.reserve(false) => slot,
            };
            // 2. The next order (on a shared line, claimed in the database).
            let Some(entry) = orders.claim(&claimer).await else {
                break;
            };
            crate::injected_panic::step("dispatcher");
            let (remote, orders) = (self.clone(), orders.clone());
            // A task per brew: the dispatcher goes back for the next free
            // barista while this one brews. The order's trace is current
            // in it (`with_context`): each attempt's `brew` span joins it
            // when spans are exported, and without export the lines it logs
            // still name the customer's trace.
            let trace = entry.trace_context().clone();
            brews
                .spawn(async move { remote.brew(&orders, &entry, slot).await }.with_context(trace));
        }
        while brews.join_next().await.is_some() {}
        info!("remote dispatcher: shift over");
    }

    /// Has one order brewed remotely on `slot` (or on the next free
    /// barista, if `None` or its replica went down meanwhile): follows its
    /// brew stream into the book, and retries on another replica if this
    /// one goes away. Returns when the order has ended, or is back in line;
    /// dropping the brew stream on the way out frees the remote barista.
    async fn brew(&self, orders: &Orders, entry: &Arc<OrderEntry>, slot: Option<Slot>) {
        let order = entry.request();
        let id = entry.id();
        let job = BrewJob {
            request: pb::BrewRequest {
                order_id: id.to_string(),
                drink: order.drink.id.to_owned(),
                size: pb::Size::from(order.size) as i32,
            },
            deadline: entry.deadline(),
        };
        let mut slot = slot;
        let mut last_failure: Option<String> = None;
        let mut attempt = 1;
        let mut turned_away = false;
        while attempt <= MAX_ATTEMPTS {
            // 1. A barista, unless the order ends or the café closes first.
            let slot = match slot.take().filter(Slot::is_up) {
                Some(slot) => slot,
                None => {
                    let reserved = tokio::select! {
                        biased;
                        () = entry.stopped() => return,
                        // On a shared line, a drink waiting for a barista
                        // when the café closes is handed back, for another
                        // café. Otherwise it is a drink in hand (a retry):
                        // it is finished within the shutdown grace.
                        () = orders.waiting_drinks_go_back() => {
                            orders.fail(entry, CLOSING_NOTE).await;
                            return;
                        }
                        slot = self.reserve(last_failure.is_some() || turned_away) => slot,
                    };
                    let Some(slot) = reserved else {
                        let reason = match &last_failure {
                            Some(why) => {
                                format!("{}; the last one: {why}", self.inner.no_barista_reason())
                            }
                            None => self.inner.no_barista_reason(),
                        };
                        warn!(order.id = %id, %reason, "no barista: order failed");
                        orders.fail(entry, &reason).await;
                        return;
                    };
                    slot
                }
            };
            let replica = Arc::clone(slot.replica());

            // The attempt's span: a child of the call that placed the
            // order, so the barista's spans (through `traceparent`, sent by
            // the traced channel) land in the customer's trace. A retry is a
            // second `brew` span beside the first, saying why.
            let span = info_span!(
                "brew",
                order.id = %id,
                attempt,
                replica = %replica.addr,
                barista = Empty,
                retry.reason = Empty,
                otel.status_code = Empty,
                otel.status_description = Empty,
            );
            join_trace(&span, entry.trace_context().clone());
            if let Some(why) = &last_failure {
                span.record("retry.reason", why.as_str());
            }

            // 2. The brew. If the order ends first (cancelled, or its counter
            // customer left or ran out of time), `select!` drops the brew
            // stream: the barista sees the stream go and is free at once.
            let response = slot.brew(job.clone());
            let outcome = tokio::select! {
                biased;
                () = entry.stopped() => {
                    span.in_scope(|| info!(order.id = %id, replica = %replica.addr, "order ended: brew stream dropped, the barista is free"));
                    return;
                }
                outcome = follow(orders, entry, response).instrument(span.clone()) => outcome,
            };
            match outcome {
                Ok(()) => return,
                Err(Failure::Final(reason)) => {
                    span.record("otel.status_code", "error");
                    span.record("otel.status_description", reason.as_str());
                    span.in_scope(|| warn!(order.id = %id, replica = %replica.addr, %reason, "the barista could not brew it: order failed"));
                    orders.fail(entry, &reason).await;
                    return;
                }
                Err(Failure::DeadlinePassed) => {
                    drop(slot);
                    // The barista's clock ran out a moment before ours: each
                    // hop gives up `grpc_serving::deadline::EARLY` before its caller.
                    // The café's own deadline layer is about to answer the
                    // customer DEADLINE_EXCEEDED and cancel the order; let it,
                    // rather than fail the order first and answer UNAVAILABLE.
                    tokio::select! {
                        () = entry.stopped() => {}
                        () = tokio::time::sleep(DEADLINE_SETTLE) => {
                            warn!(order.id = %id, "the customer's deadline passed while brewing, and the café's deadline layer did not end the order: order failed");
                            orders.fail(entry, "the customer's deadline passed before the drink was finished").await;
                        }
                    }
                    return;
                }
                Err(Failure::TurnedAway) => {
                    span.in_scope(|| info!(order.id = %id, replica = %replica.addr, "the replica is full (another café?): the order waits for the next free barista"));
                    slot.turned_away();
                    turned_away = true;
                    // Not an attempt: nothing went wrong with the order.
                    // Back to its place in the café's line if it is still
                    // there to be had (QUEUED, this café's own line); a
                    // claimed or already-brewing order waits here instead.
                    if orders.put_back(entry, CLOSING_NOTE) {
                        return;
                    }
                }
                Err(Failure::Spoiled { who, why }) => {
                    let who = who.unwrap_or_else(|| format!("the barista at {}", replica.addr));
                    span.record("otel.status_code", "error");
                    span.record("otel.status_description", why.as_str());
                    span.in_scope(|| warn!(order.id = %id, barista = %who, %why, attempt, "the barista spoiled the drink: brewing it again"));
                    // The replica stays in the registry: it answered, and
                    // its other baristas are fine.
                    drop(slot);
                    if attempt < MAX_ATTEMPTS {
                        orders
                            .note(entry, &format!("{who} spoiled it; brewing it again"))
                            .await;
                    }
                    last_failure = Some(format!("{who} spoiled it ({why})"));
                    attempt += 1;
                }
                Err(Failure::BaristaLeft { who, why }) => {
                    let who = who.unwrap_or_else(|| format!("the barista at {}", replica.addr));
                    // An error on this attempt's span, with the warning as
                    // its event; the next attempt's span says why it exists.
                    span.record("otel.status_code", "error");
                    span.record("otel.status_description", why.as_str());
                    span.in_scope(|| warn!(order.id = %id, barista = %who, %why, attempt, "barista went away: retrying on another"));
                    // Out of the registry *before* the retry reserves, so
                    // the retry cannot land on it again.
                    self.inner.registry.suspect(&replica, &why);
                    drop(slot);
                    if attempt < MAX_ATTEMPTS {
                        orders
                            .note(
                                entry,
                                &format!("{who} went away; retrying on another barista"),
                            )
                            .await;
                    }
                    last_failure = Some(format!("{who} went away ({why})"));
                    attempt += 1;
                }
            }
        }
        let reason = format!(
            "{MAX_ATTEMPTS} baristas went away or spoiled it while making it; the last one: {}",
            last_failure.unwrap_or_default()
        );
        warn!(order.id = %id, %reason, "order failed");
        orders.fail(entry, &reason).await;
    }

    /// How many replicas are up and how many baristas they have, for the
    /// metrics. It holds only the registry, not the baristas: it does not
    /// keep their background tasks running after the shift (as a clone of
    /// `self` would).
    pub fn replicas_up(&self) -> ReplicasUp {
        ReplicasUp(Arc::clone(&self.inner.registry))
    }

    /// Waits for a free barista on a replica up, as long as it takes while
    /// one is up; with none up, until `--barista-wait` after the outage
    /// began. `None` if none came.
    ///
    /// A drink in hand (`for_retry`: its replica went away, or turned it
    /// away) goes before the next order in line: the dispatcher takes no
    /// barista while one waits.
    async fn reserve(&self, for_retry: bool) -> Option<Slot> {
        let registry = &self.inner.registry;
        let _waiting = for_retry.then(|| registry.retry_waiting());
        loop {
            // Register for the bell *before* looking, so a barista freed
            // between the look and the wait is not missed.
            let freed = registry.freed().notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if (for_retry || !registry.retries_waiting())
                && let Some(slot) = registry.try_reserve()
            {
                return Some(slot);
            }
            match registry.give_up_time(self.inner.wait) {
                Some(give_up) => tokio::select! {
                    () = &mut freed => {}
                    () = tokio::time::sleep_until(give_up) => {
                        // Looked once more: a replica may have come up at
                        // the last moment.
                        return registry.try_reserve();
                    }
                },
                None => freed.await,
            }
        }
    }
}

/// How many replicas are up and their baristas (see
/// [`RemoteBaristas::replicas_up`]).
#[derive(Debug, Clone)]
pub struct ReplicasUp(Arc<Registry>);

impl ReplicasUp {
    /// The replicas whose health says SERVING and that no brew has seen
    /// fail since: those the café gives drinks to.
    pub fn get(&self) -> usize {
        self.0.up()
    }

    /// The baristas of the replicas up (their stations' size), and how
    /// many of them the café may still give a drink to.
    pub fn slots(&self) -> (usize, usize) {
        self.0.slots()
    }
}

impl Inner {
    fn no_barista_reason(&self) -> String {
        format!("no barista was reachable within {:?}", self.wait)
    }
}

/// Waits until an order waits in line (or the café has closed), without
/// taking it.
async fn until_order_waiting(book: &OrderBook) {
    loop {
        // Registered before looking, so an order placed in between is not
        // missed. (The claim that follows looks at the line before it
        // waits, so the wake-up this may consume is not lost either.)
        let joined = book.line_joined();
        tokio::pin!(joined);
        joined.as_mut().enable();
        if book.order_waiting() {
            return;
        }
        joined.await;
    }
}
