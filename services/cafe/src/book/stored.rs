//! The book's side of the order store: each order and each change as the
//! store's rows, and the book rebuilt from those rows after a restart.
//!
//! A restart keeps every order's promise (see the README's "Orders that
//! survive"):
//! - **queued** orders are back in line, in their order, at their tickets;
//! - **brewing** orders go back to the head of the line, QUEUED, with a
//!   note ([`REBREW_NOTE`]): the drink was never handed over, so it is
//!   brewed again. Their tickets are older than any queued order's, so
//!   they are first;
//! - **finished** orders are remembered as they were, oldest first, for
//!   as long as retention keeps them;
//! - request ids and claim tokens work as before. What is lost is only
//!   what a process holds: the trace of the call that placed an order, and
//!   the customer's deadline (a counter customer's call ended with the
//!   process anyway).

use std::{sync::Arc, time::SystemTime};

use cafe_domain::{
    menu,
    order::{Customer, NewOrder, OrderId, OrderStatus},
};

use super::{
    ClaimToken, OrderBook,
    entry::{Change, OrderEntry},
    line::{Line, Ticket},
};
use crate::store::{
    Record, Recovered, StoredChange, StoredOrder, from_micros, micros, size_number, status_number,
};

/// The note on an order that was brewing when the café stopped.
pub const REBREW_NOTE: &str = "brewed again: the café restarted before it was ready";

/// What a restart found, for the café's log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Orders back in line that were queued.
    pub queued: usize,
    /// Orders back at the head of the line that were brewing.
    pub rebrewed: usize,
    /// Finished orders remembered.
    pub finished: usize,
    /// Rows that could not be read (a drink no longer on the menu, a bad
    /// value): logged and left in the store, not restored.
    pub unreadable: usize,
}

/// A new order as its row.
pub(super) fn placed(entry: &OrderEntry, change: &Change) -> Record {
    let request = entry.request();
    Record::Placed(StoredOrder {
        id: entry.id().to_string(),
        ticket: i64::try_from(entry.ticket()).unwrap_or(i64::MAX),
        customer: request.customer.to_string(),
        drink: request.drink.id.to_owned(),
        size: size_number(request.size),
        request_id: request.request_id.clone(),
        claim_token: entry.claim_token().to_string(),
        placed_at: micros(entry.placed_at()),
        status: status_number(change.status),
        barista: change.barista.as_deref().map(str::to_owned),
        started_at: change.started_at.map(micros),
        ready_at: change.ready_at.map(micros),
        note: change.note.as_deref().map(str::to_owned),
        finished_at: None,
        cafe_id: None,
    })
}

/// A change to an order as the columns it writes.
pub(super) fn changed(entry: &OrderEntry, change: &Change) -> Record {
    Record::Changed(StoredChange {
        id: entry.id().to_string(),
        status: status_number(change.status),
        barista: change.barista.as_deref().map(str::to_owned),
        started_at: change.started_at.map(micros),
        ready_at: change.ready_at.map(micros),
        note: change.note.as_deref().map(str::to_owned),
        finished_at: change
            .status
            .is_final()
            .then(|| micros(change.ready_at.unwrap_or_else(SystemTime::now))),
    })
}

/// A row read back as an entry, at `queue_position` if it is queued.
fn entry_from(row: &StoredOrder, queue_position: u32) -> Result<OrderEntry, String> {
    let status = row
        .status()
        .ok_or_else(|| format!("status {} is no status", row.status))?;
    let request = NewOrder {
        customer: Customer::parse(&row.customer).map_err(|bad| bad.to_string())?,
        drink: menu::find(&row.drink)
            .ok_or_else(|| format!("{:?} is no longer on the menu", row.drink))?,
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
        queue_position: if status == OrderStatus::Queued {
            queue_position
        } else {
            0
        },
        // As the store has it: nothing to wait for.
        seq: 0,
    };
    Ok(OrderEntry::restored(
        OrderId::from(row.id.as_str()),
        ticket,
        request,
        from_micros(row.placed_at),
        claim,
        now,
    ))
}

impl OrderBook {
    /// Rebuilds the book from what the store held when the café stopped
    /// (see the module docs for what happens to each order). Call it
    /// before the café serves anyone, on a book with no orders yet.
    pub fn restore(&self, recovered: Recovered) -> Restored {
        let mut restored = Restored::default();
        let unreadable = |row: &StoredOrder, why: String, restored: &mut Restored| {
            tracing::warn!(order.id = %row.id, why, "cannot restore an order from the store; it is left there");
            restored.unreadable += 1;
        };
        let mut book = self.lock();
        debug_assert_eq!(book.registry.iter().count(), 0, "restore an empty book");

        // The line starts at the oldest open ticket: tickets before it are
        // done with.
        let first = recovered
            .open
            .first()
            .map_or(recovered.next_ticket, |row| row.ticket);
        book.line = Line::starting_at(Ticket::try_from(first).unwrap_or(0));

        for row in &recovered.finished {
            match entry_from(row, 0) {
                Ok(entry) => {
                    let id = entry.id().clone();
                    book.registry.insert(Arc::new(entry));
                    let journal = &self.journal;
                    book.registry.finished(&id, |forgotten| {
                        if let Some(journal) = journal {
                            journal.append(Record::Forgotten(forgotten.to_string()));
                        }
                    });
                    restored.finished += 1;
                }
                Err(why) => unreadable(row, why, &mut restored),
            }
        }

        for row in &recovered.open {
            let queue_position = u32::try_from(book.line.len() + 1).unwrap_or(u32::MAX);
            let entry = match entry_from(row, queue_position) {
                Ok(entry) => Arc::new(entry),
                Err(why) => {
                    unreadable(row, why, &mut restored);
                    continue;
                }
            };
            if entry.ticket() < book.line.next_ticket() {
                unreadable(row, "its ticket is taken".into(), &mut restored);
                continue;
            }
            book.line.push_at(entry.ticket(), Arc::clone(&entry));
            if entry.status() == OrderStatus::Brewing {
                // Never handed over: brewed again, from the head of the line.
                self.change(&book, &entry, |order| {
                    order.status = OrderStatus::Queued;
                    order.barista = None;
                    order.started_at = None;
                    order.note = Some(REBREW_NOTE.into());
                    true
                });
                restored.rebrewed += 1;
            } else {
                restored.queued += 1;
            }
            book.registry.insert(entry);
        }
        let next = Ticket::try_from(recovered.next_ticket).unwrap_or(0);
        book.line.skip_to(next);
        // No barista needs waking: the shift starts after this, and a
        // barista looks at the line before it waits.
        restored
    }
}
