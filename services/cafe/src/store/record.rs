//! The journal's records, and the rows a store writes from them.
//!
//! A [`Record`] is made under the book's lock, for every change, so it
//! copies no text: it holds the order's entry (which the book holds too)
//! and the change's shared strings, a few reference counts in all. The
//! writer turns each into a [`Row`], every column borrowed from the record,
//! on its own thread, and binds those; the columns a change writes are
//! worked out there too (numbers, microseconds, the claim token's hex).
//! [`StoredOrder`] and [`StoredChange`], the rows as read back, borrow the
//! same way, so one writer writes both.

use std::{sync::Arc, time::SystemTime};

use cafe_domain::order::OrderStatus;

use super::{StoredChange, StoredOrder, micros, size_number, status_number};
use crate::book::{Change, ClaimToken, OrderEntry};

/// One change the book made, as the journal carries it to the store.
#[derive(Debug, Clone)]
pub enum Record {
    /// A new order (an `INSERT`): the book's entry, and the change it is
    /// written with (as placed, or a later one folded into it before the
    /// write).
    Placed(Arc<OrderEntry>, Changed),
    /// A change of status, barista, times or note (an `UPDATE`).
    Changed(Changed),
    /// A finished order the book no longer remembers (a `DELETE`), by
    /// ticket.
    Forgotten(i64),
}

/// What one change leaves in an order's row: the columns a change writes.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The order's ticket: its row's key.
    pub ticket: i64,
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// Who is brewing or brewed it (the book's string, shared).
    pub barista: Option<Arc<str>>,
    /// When a barista started on it.
    pub started_at: Option<SystemTime>,
    /// When it was ready.
    pub ready_at: Option<SystemTime>,
    /// Why this change happened (the book's string, shared).
    pub note: Option<Arc<str>>,
    /// When it reached its final status.
    pub finished_at: Option<SystemTime>,
}

impl Changed {
    /// The change the book made to the order with `ticket`.
    pub fn of(ticket: i64, change: &Change) -> Self {
        Changed {
            ticket,
            status: change.status,
            barista: change.barista.clone(),
            started_at: change.started_at,
            ready_at: change.ready_at,
            note: change.note.clone(),
            finished_at: change
                .status
                .is_final()
                .then(|| change.ready_at.unwrap_or_else(SystemTime::now)),
        }
    }

    fn row(&self) -> ChangedRow<'_> {
        ChangedRow {
            ticket: self.ticket,
            status: status_number(self.status),
            barista: self.barista.as_deref(),
            started_at: self.started_at.map(micros),
            ready_at: self.ready_at.map(micros),
            note: self.note.as_deref(),
            finished_at: self.finished_at.map(micros),
        }
    }
}

impl Record {
    /// The record as the row it writes, borrowed from it.
    pub fn row(&self) -> Row<'_> {
        match self {
            Record::Placed(entry, now) => {
                let request = entry.request();
                Row::Insert(NewRow {
                    id: entry.id().as_str(),
                    customer: request.customer.as_str(),
                    drink: request.drink.id,
                    size: size_number(request.size),
                    request_id: request.request_id.as_deref(),
                    claim_token: ClaimText::Token(*entry.claim_token()),
                    placed_at: micros(entry.placed_at()),
                    cafe_id: None,
                    now: now.row(),
                })
            }
            Record::Changed(change) => Row::Update(change.row()),
            Record::Forgotten(ticket) => Row::Delete(*ticket),
        }
    }
}

/// One statement's worth of a record: what the store binds, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    /// A new row.
    Insert(NewRow<'a>),
    /// The columns a change writes, in an existing row.
    Update(ChangedRow<'a>),
    /// A row deleted, by ticket.
    Delete(i64),
}

/// A new order's row (see [`StoredOrder`] for each column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRow<'a> {
    /// The order's id.
    pub id: &'a str,
    /// Who ordered.
    pub customer: &'a str,
    /// The menu id of the drink.
    pub drink: &'a str,
    /// The `cafe.v1.Size` number.
    pub size: i32,
    /// The customer's idempotency key, if they gave one.
    pub request_id: Option<&'a str>,
    /// The claim token.
    pub claim_token: ClaimText<'a>,
    /// When it was placed (microseconds).
    pub placed_at: i64,
    /// PostgreSQL's shared line: the café brewing it.
    pub cafe_id: Option<&'a str>,
    /// The columns a change writes, as the row starts.
    pub now: ChangedRow<'a>,
}

/// The columns a change writes (see [`StoredChange`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangedRow<'a> {
    /// The order's ticket: its row's key.
    pub ticket: i64,
    /// The `cafe.v1.OrderStatus` number.
    pub status: i32,
    /// Who is brewing or brewed it.
    pub barista: Option<&'a str>,
    /// When a barista started on it.
    pub started_at: Option<i64>,
    /// When it was ready.
    pub ready_at: Option<i64>,
    /// Why this change happened.
    pub note: Option<&'a str>,
    /// When it reached its final status.
    pub finished_at: Option<i64>,
}

/// A claim token as a row holds it: text read back, or the book's token,
/// written out (32 hex digits) only as it is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimText<'a> {
    /// As read from a row.
    Text(&'a str),
    /// The book's.
    Token(ClaimToken),
}

impl<'a> ClaimText<'a> {
    /// The text, written into `hex` if need be.
    pub fn as_str<'b>(&self, hex: &'b mut [u8; 32]) -> &'b str
    where
        'a: 'b,
    {
        match *self {
            ClaimText::Text(text) => text,
            ClaimText::Token(token) => token.encode(hex),
        }
    }
}

impl StoredOrder {
    /// This row as a store writes it, borrowed.
    pub fn row(&self) -> Row<'_> {
        Row::Insert(NewRow {
            id: &self.id,
            customer: &self.customer,
            drink: &self.drink,
            size: self.size,
            request_id: self.request_id.as_deref(),
            claim_token: ClaimText::Text(&self.claim_token),
            placed_at: self.placed_at,
            cafe_id: self.cafe_id.as_deref(),
            now: ChangedRow {
                ticket: self.ticket,
                status: self.status,
                barista: self.barista.as_deref(),
                started_at: self.started_at,
                ready_at: self.ready_at,
                note: self.note.as_deref(),
                finished_at: self.finished_at,
            },
        })
    }
}

impl StoredChange {
    /// This change as a store writes it, borrowed.
    pub fn row(&self) -> Row<'_> {
        Row::Update(ChangedRow {
            ticket: self.ticket,
            status: self.status,
            barista: self.barista.as_deref(),
            started_at: self.started_at,
            ready_at: self.ready_at,
            note: self.note.as_deref(),
            finished_at: self.finished_at,
        })
    }
}
