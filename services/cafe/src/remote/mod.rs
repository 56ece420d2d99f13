//! Remote baristas: the café as a client of `cafe-barista` replicas,
//! balanced with power of two choices, with retries when one goes away.
//!
//! ```text
//!   dispatcher ──lock──► p2c Balance ──picks──► Replica (barista-1) ─┐
//!   dispatcher           ▲ Change::Insert/Remove  Replica (barista-2) ─┼─► Brew stream
//!   dispatcher           │                                            │
//!                 health watchers ◄── resolver (DNS every 5 s)       │
//!                                                                      ▼
//!                     started → BREWING "barista-2/Ana", finished → READY
//! ```
//!
//! # Traced across the hop
//!
//! Each attempt at a brew is a `brew` span, joined to the trace of the call
//! that placed the order (its context is kept on the [`OrderEntry`]), and the
//! replicas' channels are wrapped by [`cafe_core::propagation::traced`]: the
//! `Brew` call is a client span under the attempt and sends `traceparent`,
//! so the barista's server span lands in the customer's trace. A retry on
//! another replica is a second `brew` span with `attempt = 2` and a
//! `retry.reason`; the failed one is marked as an error, with the warning as
//! its span event.
//!
//! # Why a hand-built p2c balancer, not `Channel::balance_channel`
//!
//! tonic's `balance_channel` is p2c too, but it balances *HTTP requests*
//! over connections it keeps to itself. That hides three things this café
//! needs: which replica a brew went to (to stop retrying on it), a load
//! that lasts for the whole brew (a `Brew` call returns its headers at once,
//! so per-request load would see every replica idle), and which replicas are
//! up (for the café's health). So [`tower::balance::p2c::Balance`] runs over
//! our own `Replica` services (`remote/replica.rs`), fed by a discovery
//! stream that the tasks in `remote/discovery.rs` write; each replica's load
//! is its brews in flight.
//!
//! The balancer is a `Service` that needs `&mut self`, and the café's
//! dispatcher tasks share it behind a `tokio::sync::Mutex`. The lock is held
//! only to pick (`ready()` and `call()`, which does no I/O) and is awaited,
//! not spun on; the brews themselves run outside it, in parallel. (tower's
//! `Buffer` would do the same with a task and a channel; a mutex is simpler
//! to follow.)

mod discovery;
mod replica;

use std::{sync::Arc, time::Duration};

use cafe_core::{
    propagation::join_trace,
    proto::v1::{self as pb, brew_event::Event},
};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{Code, Response, Status, Streaming, transport::ClientTlsConfig};
use tower::{Service, ServiceExt, balance::p2c::Balance};
use tracing::{Instrument, Span, field::Empty, info, info_span, warn};

pub use discovery::BaristaEndpoint;
use discovery::Registry;
use replica::{BrewCall, BrewJob, ReplicaChange};

use crate::{
    availability::Availability,
    book::{OrderBook, OrderEntry},
};

/// How many replicas one order may be tried on before it fails.
pub const MAX_ATTEMPTS: usize = 3;

/// How long an order whose barista gave up on the customer's deadline
/// waits for the café's own deadline to cancel it, before failing it.
const DEADLINE_SETTLE: Duration = Duration::from_secs(1);

/// How long a finished brew's stream may take to end (its trailers) before
/// the dispatcher stops waiting and moves on to the next order.
const TRAILERS_WAIT: Duration = Duration::from_millis(500);

/// The balancer over the replicas the discovery tasks found.
type Balancer = Balance<UnboundedReceiverStream<ReplicaChange>, BrewJob>;

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

/// The café's handle on its remote baristas; cheap to clone (one per
/// dispatcher). The background tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct RemoteBaristas {
    inner: Arc<Inner>,
}

struct Inner {
    balancer: tokio::sync::Mutex<Balancer>,
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

/// Why a brew attempt did not end with the drink.
enum Failure {
    /// Nothing to retry: the order failed for good.
    Final(String),
    /// The barista stopped because the customer's deadline passed.
    DeadlinePassed,
    /// The barista went away (or could not be reached): try another one.
    BaristaLeft { who: Option<String>, why: String },
}

impl RemoteBaristas {
    /// Starts finding the replicas. Until one is up, and whenever none is,
    /// `availability` says no barista can be reached: new orders get
    /// UNAVAILABLE and the café's health is NOT_SERVING.
    pub fn start(availability: &Arc<Availability>, config: RemoteConfig) -> Self {
        let stop = CancellationToken::new();
        let (changes, discovered) = mpsc::unbounded_channel();
        let registry = Arc::new(Registry::new(
            changes,
            Arc::clone(availability),
            &config.endpoints,
        ));

        tokio::spawn(discovery::resolve(
            config.endpoints,
            config.tls,
            config.resolve_interval,
            Arc::clone(&registry),
            stop.clone(),
        ));

        RemoteBaristas {
            inner: Arc::new(Inner {
                balancer: tokio::sync::Mutex::new(Balance::new(UnboundedReceiverStream::new(
                    discovered,
                ))),
                registry,
                wait: config.wait,
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// Has one order brewed remotely: picks a replica, follows its brew
    /// stream into the book, and retries on another replica if it goes
    /// away. Returns when the order has ended one way or another; dropping
    /// the brew stream on the way out frees the remote barista.
    pub async fn brew(&self, book: &OrderBook, entry: &OrderEntry) {
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
        let mut last_failure: Option<String> = None;
        for attempt in 1..=MAX_ATTEMPTS {
            // 1. A replica, unless the order ends or the café closes first.
            let call = tokio::select! {
                biased;
                () = entry.stopped() => return,
                () = book.closed() => {
                    // On a shared line: handed back, for another café.
                    book.fail_order(entry, "the café closed before a barista could take this order").await;
                    return;
                }
                call = self.pick(job.clone()) => call,
            };
            let Some(BrewCall {
                replica,
                response,
                in_flight,
            }) = call
            else {
                let reason = match &last_failure {
                    Some(why) => format!("{}; the last one: {why}", self.inner.no_barista_reason()),
                    None => self.inner.no_barista_reason(),
                };
                warn!(order.id = %id, %reason, "no barista: order failed");
                book.fail_order(entry, &reason).await;
                return;
            };

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
            let outcome = tokio::select! {
                biased;
                () = entry.stopped() => {
                    span.in_scope(|| info!(order.id = %id, replica = %replica.addr, "order ended: brew stream dropped, the barista is free"));
                    return;
                }
                outcome = follow(book, entry, response).instrument(span.clone()) => outcome,
            };
            drop(in_flight);
            match outcome {
                Ok(()) => return,
                Err(Failure::Final(reason)) => {
                    span.record("otel.status_code", "error");
                    span.record("otel.status_description", reason.as_str());
                    book.fail_order(entry, &reason).await;
                    return;
                }
                Err(Failure::DeadlinePassed) => {
                    // The barista's clock ran out a moment before ours: each
                    // hop gives up `cafe_core::deadline::EARLY` before its caller.
                    // The café's own deadline layer is about to answer the
                    // customer DEADLINE_EXCEEDED and cancel the order; let it,
                    // rather than fail the order first and answer UNAVAILABLE.
                    tokio::select! {
                        () = entry.stopped() => {}
                        () = tokio::time::sleep(DEADLINE_SETTLE) => {
                            book.fail_order(entry, "the customer's deadline passed before the drink was finished").await;
                        }
                    }
                    return;
                }
                Err(Failure::BaristaLeft { who, why }) => {
                    let who = who.unwrap_or_else(|| format!("the barista at {}", replica.addr));
                    // An error on this attempt's span, with the warning as
                    // its event; the next attempt's span says why it exists.
                    span.record("otel.status_code", "error");
                    span.record("otel.status_description", why.as_str());
                    span.in_scope(|| warn!(order.id = %id, barista = %who, %why, attempt, "barista went away: retrying on another"));
                    // Out of the balancer *before* the retry picks, so the
                    // retry cannot land on it again.
                    self.inner.registry.suspect(&replica, &why);
                    if attempt < MAX_ATTEMPTS {
                        book.note_order(
                            entry,
                            &format!("{who} went away; retrying on another barista"),
                        )
                        .await;
                    }
                    last_failure = Some(format!("{who} went away ({why})"));
                }
            }
        }
        let reason = format!(
            "{MAX_ATTEMPTS} baristas went away while making it; the last one: {}",
            last_failure.unwrap_or_default()
        );
        book.fail_order(entry, &reason).await;
    }

    /// How many replicas are up, for the metrics. The count holds only the
    /// registry, not the baristas: it does not keep their background tasks
    /// running after the shift (as a clone of `self` would).
    pub fn replicas_up(&self) -> ReplicasUp {
        ReplicasUp(Arc::clone(&self.inner.registry))
    }

    /// Picks the replica for one brew with power of two choices, waiting
    /// for one to be up until `--barista-wait` after the outage began.
    /// `None` if none came.
    async fn pick(&self, job: BrewJob) -> Option<BrewCall> {
        let give_up_at = self.inner.registry.give_up_at(self.inner.wait);
        let picked = tokio::time::timeout_at(give_up_at, async {
            let mut balancer = self.inner.balancer.lock().await;
            // `ready()` is where p2c works: it takes in the discovery
            // changes, samples two ready replicas and keeps the less loaded.
            // With no replica up it waits (no polling) for a discovery
            // change. Its only error would come from the discovery stream,
            // which cannot fail.
            let balancer = balancer.ready().await.ok()?;
            // `call` does no I/O (see `replica`), so the lock is let go at
            // once; the returned future is already complete.
            balancer.call(job).await.ok()
        })
        .await;
        picked.ok().flatten()
    }
}

/// How many replicas are up (see [`RemoteBaristas::replicas_up`]).
#[derive(Debug, Clone)]
pub struct ReplicasUp(Arc<Registry>);

impl ReplicasUp {
    /// The replicas whose health says SERVING and that no brew has seen
    /// fail since: those the balancer picks from.
    pub fn get(&self) -> usize {
        self.0.up()
    }
}

impl Inner {
    fn no_barista_reason(&self) -> String {
        format!("no barista was reachable within {:?}", self.wait)
    }
}

/// Follows one brew stream into the book: `started` → BREWING with the
/// barista's name, `finished` → READY.
async fn follow(
    book: &OrderBook,
    entry: &OrderEntry,
    response: BoxFuture<'static, Result<Response<Streaming<pb::BrewEvent>>, Status>>,
) -> Result<(), Failure> {
    let mut events = match response.await {
        Ok(response) => response.into_inner(),
        Err(status) => return Err(classify(None, status)),
    };
    let mut who = None;
    loop {
        match events.message().await {
            Ok(Some(pb::BrewEvent {
                event: Some(Event::Started(started)),
            })) => {
                if !book
                    .brewing_by(entry, Arc::from(started.barista.as_str()))
                    .await
                {
                    return Ok(()); // the order ended meanwhile
                }
                Span::current().record("barista", started.barista.as_str());
                info!(order.id = %entry.id(), barista = %started.barista, "brewing remotely");
                who = Some(started.barista);
            }
            Ok(Some(pb::BrewEvent {
                event: Some(Event::Finished(_)),
            })) => {
                if book.ready_order(entry).await {
                    info!(order.id = %entry.id(), "ready");
                }
                // The customer has their drink; now read the stream to its
                // end (the barista closes it right after `finished`). Its
                // trailers carry the call's status: without them the call's
                // client span would end as CANCELLED, as if we had hung up.
                let _ = tokio::time::timeout(TRAILERS_WAIT, async {
                    while let Ok(Some(_)) = events.message().await {}
                })
                .await;
                return Ok(());
            }
            // An event kind from a newer barista: nothing this café acts on.
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Failure::BaristaLeft {
                    who,
                    why: "the brew stream ended before the drink was finished".to_owned(),
                });
            }
            Err(status) => return Err(classify(who, status)),
        }
    }
}

/// Which failed brews are worth another barista.
fn classify(who: Option<String>, status: Status) -> Failure {
    match status.code() {
        // The café checks every order before a barista sees it, so this is a
        // version mismatch; another replica would say the same.
        Code::InvalidArgument => Failure::Final(format!(
            "the barista refused the order: {}",
            status.message()
        )),
        Code::DeadlineExceeded => Failure::DeadlinePassed,
        // Connection lost, replica closing (UNAVAILABLE), or anything else a
        // dying server says: another barista can make the drink.
        code => Failure::BaristaLeft {
            who,
            why: format!("{code:?}: {}", status.message()),
        },
    }
}
