//! The book's orders as the store's rows, and back: the one conversion
//! each way, for every store (a SQLite journal's records, a restart's rows,
//! a shared line's rows and notifications).

use std::sync::Arc;

use cafe_domain::{
    menu,
    order::{Customer, NewOrder, OrderId},
};
use tracing::warn;

use super::{Record, Recovered, StoredOrder, from_micros, record::Changed};
use crate::book::{Change, ClaimToken, OrderBook, OrderEntry, Origin, Restored, Ticket, Written};

/// One change the book made, as the journal carries it to the store:
/// the entry and the change's strings shared, nothing copied (this runs
/// under the book's lock).
pub(super) fn record(written: Written<'_>) -> Record {
    match written {
        Written::Placed(entry, change) => {
            Record::Placed(Arc::clone(entry), Changed::of(ticket_number(entry), change))
        }
        Written::Changed(entry, change) => {
            Record::Changed(Changed::of(ticket_number(entry), change))
        }
        Written::Forgotten(entry) => Record::Forgotten(ticket_number(entry)),
    }
}

/// An entry's ticket as the row's key.
fn ticket_number(entry: &OrderEntry) -> i64 {
    i64::try_from(entry.ticket()).unwrap_or(i64::MAX)
}

/// A row read back as an entry for the book, as the store has it (nothing
/// to wait for); `origin` is the placing call's, for an order this café
/// placed on a shared line. An error says why the row cannot be read.
pub(crate) fn entry_from(row: &StoredOrder, origin: Origin) -> Result<OrderEntry, String> {
    let status = row
        .status()
        .ok_or_else(|| format!("status {} is no status", row.status))?;
    let request = NewOrder {
        customer: Customer::parse(&row.customer).map_err(|bad| bad.to_string())?,
        drink: menu::find(&row.drink)
            .ok_or_else(|| format!("{:?} is not on this café's menu", row.drink))?,
        size: row
            .size()
            .ok_or_else(|| format!("size {} is no size", row.size))?,
        request_id: row.request_id.clone(),
    };
    let claim = ClaimToken::parse(&row.claim_token).ok_or("the claim token is unreadable")?;
    let ticket = Ticket::try_from(row.ticket).map_err(|_| "a negative ticket")?;
    let now = Change {
        status,
        barista: row.barista.as_deref().map(Arc::from),
        started_at: row.started_at.map(from_micros),
        ready_at: row.ready_at.map(from_micros),
        note: row.note.as_deref().map(Arc::from),
        // Set as the entry joins the book's line.
        queue_position: 0,
        // In the store already: nothing to wait for.
        seq: 0,
    };
    Ok(OrderEntry::as_stored(
        OrderId::from(row.id.as_str()),
        ticket,
        request,
        from_micros(row.placed_at),
        claim,
        now,
        origin,
    ))
}

/// Rebuilds `book` from what the store held when the café stopped (see
/// [`OrderBook::restore`]); a row that cannot be read is logged and left
/// in the store.
pub fn restore(book: &OrderBook, recovered: Recovered) -> Restored {
    let mut unreadable = 0;
    let mut entries = |rows: &[StoredOrder]| -> Vec<OrderEntry> {
        rows.iter()
            .filter_map(|row| match entry_from(row, Origin::default()) {
                Ok(entry) => Some(entry),
                Err(why) => {
                    warn!(order.id = %row.id, why, "cannot restore an order from the store; it is left there");
                    unreadable += 1;
                    None
                }
            })
            .collect()
    };
    let finished = entries(&recovered.finished);
    let open = entries(&recovered.open);
    let next_ticket = Ticket::try_from(recovered.next_ticket).unwrap_or(0);
    let mut restored = book.restore(finished, open, next_ticket);
    restored.unreadable += unreadable;
    restored
}
