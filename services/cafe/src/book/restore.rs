//! Orders the book takes in as a store has them, rather than placing them:
//! the book rebuilt after a restart, and a shared line's rows.
//!
//! A restart keeps every order's promise (see docs/cafe-server.md):
//! - **queued** orders are back in line, in their order, at their tickets;
//! - **brewing** orders go back to the head of the line, QUEUED, with a
//!   note ([`REBREW_NOTE`]): the drink was never handed over, so it is
//!   brewed again. Their tickets are older than any queued order's, so
//!   they are first;
//! - **finished** orders are remembered as they were, oldest first, for
//!   as long as retention keeps them.
//!
//! On a shared line a row is taken in only if its version is newer than
//! the entry's, so an echo, or news that arrives after a newer change was
//! already taken in, changes nothing; taking it in is the book's ordinary
//! bookkeeping (the history, the line at the order's ticket, the board).

use std::sync::Arc;

use cafe_domain::order::{OrderId, OrderStatus};

use super::{BookState, OrderBook, entry::OrderEntry, line::Line, line::Ticket};

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
    /// value, a ticket taken): logged and left in the store, not restored.
    pub unreadable: usize,
}

impl OrderBook {
    /// Rebuilds the book from what the store held when the café stopped:
    /// `finished` oldest first, `open` in ticket order, and `next_ticket`,
    /// one past every ticket ever given (see the module docs for what
    /// happens to each order). Call it before the café serves anyone, on a
    /// book with no orders yet.
    pub fn restore(
        &self,
        finished: Vec<OrderEntry>,
        open: Vec<OrderEntry>,
        next_ticket: Ticket,
    ) -> Restored {
        let mut restored = Restored::default();
        let mut book = self.lock();
        debug_assert_eq!(book.registry.iter().count(), 0, "restore an empty book");

        // The line starts at the oldest open ticket: tickets before it are
        // done with.
        let first = open.first().map_or(next_ticket, OrderEntry::ticket);
        book.line = Line::starting_at(first);

        for entry in finished {
            let entry = Arc::new(entry);
            book.registry.insert(Arc::clone(&entry));
            self.finished(&mut book, &entry);
            restored.finished += 1;
        }

        for entry in open {
            let entry = Arc::new(entry);
            if entry.ticket() < book.line.next_ticket() {
                tracing::warn!(order.id = %entry.id(), "cannot restore an order whose ticket is taken; it is left in the store");
                restored.unreadable += 1;
                continue;
            }
            book.line.push_at(entry.ticket(), Arc::clone(&entry));
            if entry.status() == OrderStatus::Queued {
                entry.joined_at(u32::try_from(book.line.len()).unwrap_or(u32::MAX));
            }
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
        book.line.skip_to(next_ticket);
        // No barista needs waking: the shift starts after this, and a
        // barista looks at the line before it waits.
        restored
    }

    /// Takes in an order as a shared line's row has it at `version`
    /// (`news`, built from the row): creates the entry if the book has
    /// none, or applies the row's state if it is newer than what the entry
    /// has. Returns the book's entry.
    pub fn take_in(&self, news: OrderEntry, version: i64) -> Arc<OrderEntry> {
        let mut book = self.lock();
        let book = &mut *book;
        let ticket = news.ticket();
        let now = news.latest();
        let entry = match book.registry.get(news.id().as_str()).cloned() {
            Some(entry) if version <= entry.version() => return entry,
            Some(entry) => entry,
            None => {
                let entry = Arc::new(news);
                entry.set_version(version);
                if now.status == OrderStatus::Queued
                    && book.line.insert(ticket, Arc::clone(&entry)).is_ok()
                {
                    entry.joined_at(book.line.position(ticket).unwrap_or(0));
                    self.joined_line(book);
                }
                book.registry.insert(Arc::clone(&entry));
                if now.status.is_final() {
                    self.finished(book, &entry);
                }
                self.tell_board(&entry, || entry.latest());
                return entry;
            }
        };
        entry.set_version(version);
        // The line first, so the change records the place it has now.
        let in_line = book.line.position(ticket).is_some();
        if now.status == OrderStatus::Queued && !in_line {
            if book.line.insert(ticket, Arc::clone(&entry)).is_ok() {
                self.joined_line(book);
            }
        } else if now.status != OrderStatus::Queued && in_line && book.line.remove(ticket).is_some()
        {
            self.line_moves.moved(book.line.len());
        }
        let was_final = entry.status().is_final();
        self.change(book, &entry, |order| {
            order.status = now.status;
            order.barista = now.barista;
            order.started_at = now.started_at;
            order.ready_at = now.ready_at;
            order.note = now.note;
            true
        });
        if now.status.is_final() && !was_final {
            self.finished(book, &entry);
        }
        entry
    }

    /// An order joined the mirrored line: wake one idle barista, and tell
    /// the buzzers (it may have joined ahead of them).
    fn joined_line(&self, book: &BookState) {
        self.work.notify_one();
        self.line_moves.moved(book.line.len());
    }

    /// Forgets an order the book has open but the shared line no longer
    /// has at all: it ended at another café and was pruned there while
    /// this café missed the news, so its end can never be taken in. It
    /// leaves the line and the book (a lookup gets NOT_FOUND, as at every
    /// other café), and whoever follows it here is told it is gone rather
    /// than left waiting. Returns whether the book had it.
    pub fn forget_gone(&self, id: &str) -> bool {
        let mut book = self.lock();
        let Some(entry) = book.registry.remove_open(id) else {
            return false;
        };
        if book.line.remove(entry.ticket()).is_some() {
            self.line_moves.moved(book.line.len());
        }
        drop(book);
        entry.forget();
        true
    }

    /// The ids of the orders the book has open: what a shared line's café
    /// reads again after it missed some news.
    pub fn open_ids(&self) -> Vec<OrderId> {
        self.lock()
            .registry
            .iter()
            .filter(|entry| !entry.status().is_final())
            .map(|entry| entry.id().clone())
            .collect()
    }
}
