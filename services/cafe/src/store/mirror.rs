//! A book on a line shared by several cafés: the database decides, the
//! book mirrors.
//!
//! Every café's book holds every order of the shared line (so `GetOrder`,
//! `WatchOrder`, `WatchBoard` and places in line work on any café), but a
//! change that two cafés could both want is decided by one statement in
//! PostgreSQL ([`super::shared`]) first: placing (the database numbers the
//! order and finds a retry's earlier order, whichever café took it),
//! claiming (`FOR UPDATE SKIP LOCKED`: what a barista gets may not be what
//! it saw first, and that is fine), and ready, cancel, fail, note and hand
//! back (guarded updates: the loser of a race changes nothing and takes in
//! the row as it is).
//!
//! Each café writes, then takes in the row its statement returned
//! ([`mirror`], [`OrderBook::take_in`]); every other café takes in the same
//! row when its notification arrives (the `following` task).

use std::{sync::Arc, time::SystemTime};

use cafe_domain::order::{NewOrder, Order, OrderStatus};
use tokio::time::Duration;
use tracing::warn;

use super::{
    batches::Batches,
    micros,
    rows::entry_from,
    shared::{HANDED_BACK_NOTE, NewRow, OrderRow, SharedLine},
};
use crate::{
    book::{Admitted, ClaimToken, OrderBook, OrderEntry, Origin, Placed},
    error::CafeError,
};

/// How long to wait before trying a failed database write again.
pub(super) const RETRY: Duration = Duration::from_millis(500);

/// Places an order in the database first (in the next batch), then takes
/// in the row it got.
pub(super) async fn place(
    book: &OrderBook,
    batches: &Batches,
    request: NewOrder,
    origin: Origin,
) -> Result<Placed, CafeError> {
    // A retry this café already knows of is answered from memory.
    let id = match book.admit(&request)? {
        Admitted::Earlier(placed) => return Ok(placed),
        Admitted::New(id) => id,
    };
    let new = NewRow {
        id: id.to_string(),
        customer: request.customer.to_string(),
        drink: request.drink.id.to_owned(),
        size: super::size_number(request.size),
        request_id: request.request_id.clone(),
        claim_token: ClaimToken::random().to_string(),
        placed_at: micros(SystemTime::now()),
    };
    let placed = batches.place(new).await.map_err(|error| {
        warn!(%error, "the shared line could not take an order");
        CafeError::StoreUnwritable(error.to_string())
    })?;
    let entry = take_in(book, &placed.row, origin).map_err(CafeError::StoreUnwritable)?;
    book.placed(entry, &request, placed.is_new)
}

/// The order with this id: one this café has not heard of yet (placed a
/// moment ago elsewhere) is looked up in the database.
pub(super) async fn find(
    book: &OrderBook,
    shared: &SharedLine,
    id: &str,
) -> Result<Arc<OrderEntry>, CafeError> {
    let known = book.get(id);
    if known.is_ok() {
        return known;
    }
    match shared.order(id).await {
        Ok(Some(row)) => mirror(book, &row).map_err(CafeError::StoreUnwritable),
        Ok(None) => known,
        Err(error) => {
            warn!(%error, order.id = id, "could not look an order up in the shared line");
            known
        }
    }
}

/// Marks an order this café brews as ready, in the database first (in the
/// next batch; with `stays`, the barista's next claim goes in the same
/// one). False if it is not this café's to finish any more (cancelled
/// meanwhile, or taken back because this café was thought dead).
pub(super) async fn ready(
    book: &OrderBook,
    shared: &SharedLine,
    batches: &Batches,
    entry: &OrderEntry,
    mut stays: Option<&Arc<str>>,
) -> bool {
    loop {
        // A failed statement keeps its claims waiting: the barista is
        // idle once, however many times its READY is tried.
        let now = SystemTime::now();
        match batches.ready(entry.id().as_str(), now, stays.take()).await {
            Ok(Some(row)) => return mirror(book, &row).is_ok(),
            Ok(None) => {
                refresh(book, shared, entry.id().as_str()).await;
                return false;
            }
            Err(error) => {
                // The drink is made: keep trying (the shutdown grace
                // bounds it).
                warn!(%error, order.id = %entry.id(), "could not write READY; trying again");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// `barista` starts on an order this café claimed: written first (the
/// order must still be this café's to brew), unless it is the barista
/// that claimed it. False if it must not be brewed.
pub(super) async fn start(
    book: &OrderBook,
    shared: &SharedLine,
    entry: &OrderEntry,
    barista: Arc<str>,
) -> bool {
    let now = entry.latest();
    if now.status.is_final() {
        return false;
    }
    if now.status == OrderStatus::Brewing && now.barista.as_deref() == Some(&*barista) {
        // Claimed by this very barista: the claim wrote it.
        return true;
    }
    match shared
        .rebrew(entry.id().as_str(), &barista, SystemTime::now())
        .await
    {
        Ok(Some(row)) => mirror(book, &row).is_ok(),
        Ok(None) => {
            refresh(book, shared, entry.id().as_str()).await;
            false
        }
        Err(error) => {
            warn!(%error, order.id = %entry.id(), "could not write who brews an order");
            false
        }
    }
}

/// Fails an order with `reason`, written first; while this café closes the
/// order is handed back to the line instead (another café can still brew
/// it).
pub(super) async fn fail(
    book: &OrderBook,
    shared: &SharedLine,
    entry: &OrderEntry,
    reason: &str,
) -> bool {
    let id = entry.id().as_str();
    let written = if book.is_closed() {
        shared
            .hand_back(Some(id), HANDED_BACK_NOTE)
            .await
            .map(|rows| rows.into_iter().next())
    } else {
        shared
            .end(id, OrderStatus::Failed, reason, SystemTime::now())
            .await
    };
    match written {
        Ok(Some(row)) => mirror(book, &row).is_ok(),
        Ok(None) => false,
        Err(error) => {
            warn!(%error, order.id = id, "could not write a failed order; the lease will return it");
            false
        }
    }
}

/// Notes why an open order waits longer (its barista went away), written
/// first.
pub(super) async fn note(
    book: &OrderBook,
    shared: &SharedLine,
    entry: &OrderEntry,
    note: &str,
) -> bool {
    match shared.note(entry.id().as_str(), note).await {
        Ok(Some(row)) => mirror(book, &row).is_ok(),
        Ok(None) => false,
        Err(error) => {
            warn!(%error, order.id = %entry.id(), "could not write an order's note");
            false
        }
    }
}

/// Cancels an order for the customer holding `claim_token`, in the
/// database first (any café may cancel any order): durable when this
/// returns.
pub(super) async fn cancel(
    book: &OrderBook,
    shared: &SharedLine,
    id: &str,
    claim_token: &str,
    reason: &str,
) -> Result<Order, CafeError> {
    let entry = find(book, shared, id).await?;
    if !entry.claim_token().matches(claim_token) {
        return Err(CafeError::WrongClaimToken(entry.id().clone()));
    }
    let ended = shared
        .end(id, OrderStatus::Cancelled, reason, SystemTime::now())
        .await
        .map_err(|error| CafeError::StoreUnwritable(error.to_string()))?;
    match ended {
        Some(row) => {
            mirror(book, &row).map_err(CafeError::StoreUnwritable)?;
        }
        None => refresh(book, shared, id).await,
    }
    let order = entry.snapshot();
    match order.status {
        OrderStatus::Cancelled => Ok(order),
        status => Err(CafeError::NotCancellable {
            id: order.id,
            status,
        }),
    }
}

/// Cancels `entry` in the background for a customer who left the counter,
/// and takes in the row it wrote (it is called from a drop guard, which
/// cannot wait).
pub(super) fn abandon(
    book: &Arc<OrderBook>,
    shared: &SharedLine,
    entry: &OrderEntry,
    reason: &str,
) -> bool {
    // A call cut because this café is closing is not a customer leaving:
    // another café brews the order, and a retry with the same request id
    // finds it there.
    if book.is_closed() || entry.status().is_final() {
        return false;
    }
    let (book, shared) = (Arc::clone(book), shared.clone());
    let (id, reason) = (entry.id().to_string(), reason.to_owned());
    tokio::spawn(async move {
        match shared
            .end(&id, OrderStatus::Cancelled, &reason, SystemTime::now())
            .await
        {
            Ok(Some(row)) => {
                let _ = mirror(&book, &row);
            }
            Ok(None) => {}
            Err(error) => warn!(%error, order.id = id, "could not cancel an abandoned order"),
        }
    });
    true
}

/// Returns to the line the orders this café is brewing (its shutdown grace
/// ran out): the other cafés brew them. Returns how many.
pub(super) async fn hand_back_unfinished(book: &OrderBook, shared: &SharedLine) -> usize {
    match shared.hand_back(None, HANDED_BACK_NOTE).await {
        Ok(rows) => {
            for row in &rows {
                let _ = mirror(book, row);
            }
            rows.len()
        }
        Err(error) => {
            warn!(%error, "could not hand back the orders in hand; the lease will");
            0
        }
    }
}

/// Takes in the database's row for an order (see the module docs). Returns
/// the book's entry; an error if the row cannot be read (a drink this café
/// does not know).
pub fn mirror(book: &OrderBook, row: &OrderRow) -> Result<Arc<OrderEntry>, String> {
    take_in(book, row, Origin::default())
}

/// [`mirror`], with `origin` for an entry made here (the placing call's
/// trace, for this café's own orders).
fn take_in(book: &OrderBook, row: &OrderRow, origin: Origin) -> Result<Arc<OrderEntry>, String> {
    Ok(book.take_in(entry_from(&row.order, origin)?, row.version))
}

/// Reads one order again and takes it in (a guarded write lost a race:
/// the row says what happened instead).
async fn refresh(book: &OrderBook, shared: &SharedLine, id: &str) {
    match shared.order(id).await {
        Ok(Some(row)) => {
            let _ = mirror(book, &row);
        }
        Ok(None) => {}
        Err(error) => warn!(%error, order.id = id, "could not read an order back"),
    }
}

#[cfg(test)]
mod tests;
