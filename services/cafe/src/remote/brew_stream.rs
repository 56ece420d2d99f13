//! One remote brew, as the café reads it: the `Brew` stream followed into
//! the book (`started` → BREWING with the barista's name, `finished` →
//! READY), and, when it ends otherwise, which kind of failure it was, for
//! the brew task (`super::RemoteBaristas::brew`) to decide: fail the order,
//! wait for another barista, or brew it again elsewhere.

use std::sync::Arc;

use cafe_domain::proto::v1::{self as pb, brew_event::Event};
use futures::future::BoxFuture;
use tonic::{Code, Response, Status, Streaming};
use tracing::{Span, debug};

use super::TRAILERS_WAIT;
use crate::{book::OrderEntry, store::Orders};

/// Why a brew attempt did not end with the drink.
pub(super) enum Failure {
    /// Nothing to retry: the order failed for good.
    Final(String),
    /// The barista stopped because the customer's deadline passed.
    DeadlinePassed,
    /// The replica was full (for another café): not its fault, nor the
    /// order's; wait for another free barista.
    TurnedAway,
    /// The barista went away (or could not be reached): try another one.
    BaristaLeft { who: Option<String>, why: String },
    /// The barista answered that the drink went wrong (INTERNAL, as a
    /// flaky barista does), so the replica is there: try again, without
    /// holding it against the replica.
    Spoiled { who: Option<String>, why: String },
}

/// Follows one brew stream into the book: `started` → BREWING with the
/// barista's name, `finished` → READY.
pub(super) async fn follow(
    orders: &Orders,
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
                if !orders
                    .start(entry, Arc::from(started.barista.as_str()))
                    .await
                {
                    return Ok(()); // the order ended meanwhile
                }
                Span::current().record("barista", started.barista.as_str());
                debug!(order.id = %entry.id(), barista = %started.barista, "brewing remotely");
                who = Some(started.barista);
            }
            Ok(Some(pb::BrewEvent {
                event: Some(Event::Finished(_)),
            })) => {
                if orders.ready(entry).await {
                    debug!(order.id = %entry.id(), "ready");
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
        // All its baristas busy, for another café: see the module docs.
        Code::ResourceExhausted => Failure::TurnedAway,
        // The replica answered that the drink went wrong (a flaky
        // barista): it is up, so brew it again on whichever barista is
        // free next, this replica's included.
        Code::Internal => Failure::Spoiled {
            who,
            why: format!("{:?}: {}", status.code(), status.message()),
        },
        // Connection lost, replica closing (UNAVAILABLE), or anything else a
        // dying server says: another barista can make the drink.
        code => Failure::BaristaLeft {
            who,
            why: format!("{code:?}: {}", status.message()),
        },
    }
}
