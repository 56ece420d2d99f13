//! Every order the café remembers, found by id or by the customer's
//! request id, and how long it remembers them.
//!
//! - **By id**: `GetOrder`, `WatchOrder` and `CancelOrder` look orders up
//!   here, open or finished.
//! - **Idempotency**: a customer who retries with the same `request_id`
//!   gets the order placed the first time instead of a second drink. The
//!   key is (customer, request id): two customers may use the same id.
//! - **Retention**: finished orders are kept for a while, so a customer can
//!   still look theirs up, then forgotten oldest first, so memory stays
//!   bounded however long the café runs.
//!
//! It is plain data, changed only under the book's lock. In the order
//! store it is the `orders` table: the primary key, the unique index on
//! (customer, request id), and retention as a `DELETE` journalled when an
//! order is forgotten here.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use cafe_domain::order::{Customer, OrderId};

use super::entry::OrderEntry;

/// The orders the book knows.
#[derive(Debug)]
pub(super) struct Registry {
    orders: HashMap<OrderId, Arc<OrderEntry>>,
    /// (customer, request id) → the order placed with them.
    by_request: HashMap<(Customer, String), OrderId>,
    /// Finished orders, oldest first, so the oldest can be forgotten.
    finished: VecDeque<OrderId>,
    /// How many finished orders are remembered.
    finished_kept: usize,
}

impl Registry {
    pub(super) fn new(finished_kept: usize) -> Self {
        Registry {
            orders: HashMap::new(),
            by_request: HashMap::new(),
            finished: VecDeque::new(),
            finished_kept,
        }
    }

    /// The order with this id.
    pub(super) fn get(&self, id: &str) -> Option<&Arc<OrderEntry>> {
        self.orders.get(id)
    }

    /// The order `customer` placed earlier with `request_id`.
    pub(super) fn placed_with(
        &self,
        customer: &Customer,
        request_id: &str,
    ) -> Option<&Arc<OrderEntry>> {
        // The key is built to look it up: only requests that carry an id
        // pay for it.
        let id = self
            .by_request
            .get(&(customer.clone(), request_id.to_owned()))?;
        self.orders.get(id)
    }

    /// An id no order here has.
    pub(super) fn fresh_id(&self) -> OrderId {
        loop {
            let id = OrderId::random();
            if !self.orders.contains_key(&id) {
                return id;
            }
        }
    }

    /// Remembers a new order.
    pub(super) fn insert(&mut self, entry: Arc<OrderEntry>) {
        if let Some(request_id) = &entry.request().request_id {
            self.by_request.insert(
                (entry.request().customer.clone(), request_id.clone()),
                entry.id().clone(),
            );
        }
        self.orders.insert(entry.id().clone(), entry);
    }

    /// Notes that an order has ended, and forgets the oldest ended orders
    /// beyond what the café keeps, telling `forgot` each one (the store
    /// forgets them too).
    pub(super) fn finished(&mut self, id: &OrderId, mut forgot: impl FnMut(&OrderEntry)) {
        self.finished.push_back(id.clone());
        while self.finished.len() > self.finished_kept {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if let Some(forgotten) = self.orders.remove(&old) {
                if let Some(request_id) = &forgotten.request().request_id {
                    self.by_request
                        .remove(&(forgotten.request().customer.clone(), request_id.clone()));
                }
                forgot(&forgotten);
            }
        }
    }

    /// Forgets an open order the store no longer has (see
    /// [`super::OrderBook::forget_gone`]); returns it, if it was here.
    pub(super) fn remove_open(&mut self, id: &str) -> Option<Arc<OrderEntry>> {
        let entry = self.orders.remove(id)?;
        if let Some(request_id) = &entry.request().request_id {
            self.by_request
                .remove(&(entry.request().customer.clone(), request_id.clone()));
        }
        Some(entry)
    }

    /// Every order remembered, open or finished, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<OrderEntry>> {
        self.orders.values()
    }
}
