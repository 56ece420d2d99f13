//! Placing an order: checked and numbered under the book's one lock, so a
//! retry with the same request id gets the order placed the first time and
//! an order is either refused or in the line that closing empties.

use std::sync::Arc;

use cafe_domain::order::{FieldViolation, NewOrder, OrderId};

use super::{
    BookState, OrderBook, Written,
    entry::{OrderEntry, Origin},
};
use crate::error::CafeError;

/// The result of placing an order.
#[derive(Debug)]
pub struct Placed {
    /// The order (new, or the one placed earlier with the same request id).
    pub entry: Arc<OrderEntry>,
    /// False when an earlier order with the same request id was returned.
    pub is_new: bool,
    /// Its place in line now (0 if it has left the line).
    pub queue_position: u32,
}

/// What checking a new order found ([`OrderBook::admit`]).
#[derive(Debug)]
pub enum Admitted {
    /// A retry: the order placed earlier with the same request id.
    Earlier(Placed),
    /// A new order, with the id it gets.
    New(OrderId),
}

impl OrderBook {
    /// Places an order at the end of the line, or returns the order placed
    /// earlier by the same customer with the same request id. `origin` (the
    /// customer's deadline, the call's trace) travels with a new order to
    /// whoever brews it.
    pub fn place(&self, request: NewOrder, origin: Origin) -> Result<Placed, CafeError> {
        let mut book = self.lock();

        let id = match self.admit_locked(&book, &request)? {
            Admitted::Earlier(placed) => return Ok(placed),
            Admitted::New(id) => id,
        };
        let queue_position = u32::try_from(book.line.len() + 1).unwrap_or(u32::MAX);
        let ticket = book.line.next_ticket();
        let entry = Arc::new(OrderEntry::new(id, ticket, request, origin, queue_position));
        if let Some(journal) = &self.journal {
            // Before anyone else holds the entry: nobody follows it yet.
            entry.placed_as(journal.record(Written::Placed(&entry, &entry.latest())));
        }
        book.line.push(Arc::clone(&entry));
        book.registry.insert(Arc::clone(&entry));
        self.tell_board(&entry, || entry.latest());
        drop(book);

        // Wake one idle barista; if none is idle, the permit is kept and the
        // next barista to ask for work finds the order at once.
        self.work.notify_one();
        Ok(Placed {
            entry,
            is_new: true,
            queue_position,
        })
    }

    /// Whether `request` may be placed, as [`OrderBook::place`] checks it
    /// (a retry gets its earlier order back; a closed café or a full line
    /// refuses), for an order another store numbers first (a shared line).
    pub fn admit(&self, request: &NewOrder) -> Result<Admitted, CafeError> {
        self.admit_locked(&self.lock(), request)
    }

    fn admit_locked(&self, book: &BookState, request: &NewOrder) -> Result<Admitted, CafeError> {
        // A retry of an order already accepted gets that order back, even
        // while the café is closing or has no barista: it was not lost.
        if let Some(request_id) = &request.request_id
            && let Some(entry) = book.registry.placed_with(&request.customer, request_id)
        {
            return placed_earlier(book, entry, request).map(Admitted::Earlier);
        }

        // Asked under the book's lock: `close` marks the café closed before
        // it takes the lock to empty the line, so an order either is
        // refused here or is in the line `close` empties.
        self.availability.check()?;
        if book.line.len() >= self.queue_capacity {
            return Err(CafeError::QueueFull {
                capacity: self.queue_capacity,
            });
        }
        Ok(Admitted::New(book.registry.fresh_id()))
    }

    /// The answer to placing `request`, once its order is `entry` (taken in
    /// from a shared line): `is_new` false when the line found it placed
    /// earlier, at any café.
    pub fn placed(
        &self,
        entry: Arc<OrderEntry>,
        request: &NewOrder,
        is_new: bool,
    ) -> Result<Placed, CafeError> {
        let book = self.lock();
        if !is_new {
            return placed_earlier(&book, &entry, request);
        }
        let queue_position = book.line.position(entry.ticket()).unwrap_or(0);
        Ok(Placed {
            entry,
            is_new,
            queue_position,
        })
    }
}

/// The answer to a retry of `request`, which `entry` was placed with
/// earlier: that order, unless the request id is being reused for a
/// different drink.
fn placed_earlier(
    book: &BookState,
    entry: &Arc<OrderEntry>,
    request: &NewOrder,
) -> Result<Placed, CafeError> {
    let earlier = entry.request();
    if earlier.drink.id != request.drink.id || earlier.size != request.size {
        return Err(CafeError::InvalidRequest(vec![FieldViolation {
            field: "request_id",
            description: format!(
                "request_id {:?} was already used for order {} ({} {}): use a new request_id for a different drink",
                request.request_id.as_deref().unwrap_or_default(),
                entry.id(),
                earlier.size,
                earlier.drink.id
            ),
        }]));
    }
    Ok(Placed {
        entry: Arc::clone(entry),
        is_new: false,
        queue_position: book.line.position(entry.ticket()).unwrap_or(0),
    })
}
