//! The line: orders waiting for a barista, first come first served.
//!
//! Each order gets a **ticket**, a number one higher than the last, as at a
//! deli counter. Its place in line is *derived* from the tickets, never
//! stored with the order: one plus the number of tickets still waiting
//! ahead of it. So when the first order leaves, nothing is rewritten.
//!
//! Counting "tickets still waiting ahead" must stay cheap when customers
//! leave from the middle of a long line. A [Fenwick tree] over the tickets
//! keeps a 1 for every waiting ticket and answers "how many up to here" in
//! O(log n): taking the first order, cancelling one from the middle and
//! asking a place are all O(log n), and joining is O(1) amortised. The
//! tree covers a window of tickets from `origin`, rebuilt at least twice as
//! large as needed when new tickets run past it, so a rebuild happens at
//! most once per window's worth of tickets.
//!
//! On a shared line tickets come from a database sequence and arrive out
//! of order (another café's 41 after this café's 42, an order handed back
//! with its old ticket): `Line::insert` puts an order at its ticket,
//! wherever that is (see docs/cafe-server.md, "The line").
//!
//! [Fenwick tree]: https://en.wikipedia.org/wiki/Fenwick_tree

use std::collections::VecDeque;

/// An order's number in the line: one higher than the order before it.
pub type Ticket = u64;

/// The smallest window the position tree covers.
const MIN_WINDOW: usize = 64;

/// Orders waiting, in ticket order, each findable by its ticket.
#[derive(Debug)]
pub(crate) struct Line<T> {
    /// `slots[i]` is ticket `first + i`: `Some` while it waits, `None` once
    /// it left from the middle. The front slot is always `Some` (empty
    /// slots there are dropped at once), so the front is the next order.
    slots: VecDeque<Option<T>>,
    /// The ticket of `slots[0]`.
    first: Ticket,
    /// The ticket the next order gets.
    next: Ticket,
    /// How many orders wait.
    len: usize,
    /// A 1 for every waiting ticket, at index `ticket - origin`.
    waiting: Fenwick,
    /// The ticket at index 0 of `waiting`; every ticket before it is gone.
    origin: Ticket,
}

impl<T> Default for Line<T> {
    fn default() -> Self {
        Self::starting_at(0)
    }
}

impl<T> Line<T> {
    /// An empty line whose first ticket is `first`: a café restarting
    /// carries on numbering where it stopped.
    pub(crate) fn starting_at(first: Ticket) -> Self {
        Line {
            slots: VecDeque::new(),
            first,
            next: first,
            len: 0,
            waiting: Fenwick::new(MIN_WINDOW),
            origin: first,
        }
    }

    /// How many orders wait.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The ticket the next order to join will get.
    pub(crate) fn next_ticket(&self) -> Ticket {
        self.next
    }

    /// Puts `item` at the end of the line; returns its ticket.
    pub(crate) fn push(&mut self, item: T) -> Ticket {
        self.push_at(self.next, item)
    }

    /// Puts `item` at the end of the line with `ticket`, which must not be
    /// before the next one: the tickets skipped are gaps (orders that
    /// finished before a restart), as if they had left the line.
    pub(crate) fn push_at(&mut self, ticket: Ticket, item: T) -> Ticket {
        assert!(ticket >= self.next, "tickets join the line in order");
        if self.insert(ticket, item).is_err() {
            unreachable!("no ticket at or after `next` is in the line");
        }
        ticket
    }

    /// Puts `item` in line at `ticket`, which another café may have handed
    /// out (see the module's docs): after the last ticket (with a gap, if
    /// tickets in between have not arrived), in a gap, or before the first.
    /// Gives `item` back if an order with `ticket` is already waiting.
    /// Tickets given out by `Line::push` from then on come after it.
    pub(crate) fn insert(&mut self, ticket: Ticket, item: T) -> Result<(), T> {
        let end = self.first + self.slots.len() as u64;
        if self.slots.is_empty() {
            // Nothing waits: the line starts again at this ticket.
            self.first = ticket;
            self.slots.push_back(Some(item));
        } else if ticket >= end {
            // At the end, or past it: empty slots for the tickets between.
            self.slots
                .resize_with((ticket - self.first) as usize, || None);
            self.slots.push_back(Some(item));
        } else if let Some(offset) = ticket.checked_sub(self.first) {
            // Into a gap.
            let slot = &mut self.slots[offset as usize];
            if slot.is_some() {
                return Err(item);
            }
            *slot = Some(item);
        } else {
            // Before the first: the new front, with empty slots up to the
            // old one.
            for _ in ticket + 1..self.first {
                self.slots.push_front(None);
            }
            self.slots.push_front(Some(item));
            self.first = ticket;
        }
        self.next = self.next.max(ticket + 1);
        self.len += 1;
        if self.first < self.origin
            || self.first + self.slots.len() as u64 > self.origin + self.waiting.len() as u64
        {
            self.rebuild();
        } else {
            self.waiting.add(self.index(ticket), 1);
        }
        Ok(())
    }

    /// Takes the first order out of the line.
    pub(crate) fn pop_front(&mut self) -> Option<(Ticket, T)> {
        let item = self
            .slots
            .pop_front()?
            .expect("the front slot is never empty");
        let ticket = self.first;
        self.first += 1;
        self.waiting.add(self.index(ticket), -1);
        self.len -= 1;
        self.drop_empty_front();
        Some((ticket, item))
    }

    /// Takes the order with `ticket` out of the line, wherever it is.
    pub(crate) fn remove(&mut self, ticket: Ticket) -> Option<T> {
        let slot = ticket
            .checked_sub(self.first)
            .and_then(|offset| self.slots.get_mut(offset as usize))?;
        let item = slot.take()?;
        self.waiting.add(self.index(ticket), -1);
        self.len -= 1;
        self.drop_empty_front();
        Some(item)
    }

    /// Makes the next order's ticket `next` (at least the next one already):
    /// tickets given out before a restart are not given again.
    pub(crate) fn skip_to(&mut self, next: Ticket) {
        self.next = self.next.max(next);
    }

    /// The place in line of the order with `ticket` (1 is next), if it is
    /// still waiting.
    pub(crate) fn position(&self, ticket: Ticket) -> Option<u32> {
        let offset = ticket.checked_sub(self.first)?;
        self.slots.get(offset as usize)?.as_ref()?;
        // Those waiting up to and including this ticket.
        Some(self.waiting.prefix_sum(self.index(ticket)))
    }

    /// Every order waiting, first in line first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    fn index(&self, ticket: Ticket) -> usize {
        (ticket - self.origin) as usize
    }

    /// Drops the empty slots at the front, so that the front is the next
    /// order (or the line is empty).
    fn drop_empty_front(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// Moves the tree's window over the tickets held, at least twice as
    /// large as they need. A window that had to move back (a ticket arrived
    /// before it) gets as much room again before the first ticket, so the
    /// late arrivals after it fit without another rebuild.
    fn rebuild(&mut self) {
        let room_before = if self.first < self.origin {
            self.first.min(self.slots.len() as u64)
        } else {
            0
        };
        self.origin = self.first - room_before;
        let size = (room_before as usize + self.slots.len() * 2)
            .max(MIN_WINDOW)
            .next_power_of_two();
        let counts = std::iter::repeat_n(0, room_before as usize)
            .chain(self.slots.iter().map(|slot| u32::from(slot.is_some())));
        self.waiting = Fenwick::from_counts(size, counts);
    }
}

/// A Fenwick tree of counts: add to one index, or sum every index up to
/// one, both in O(log n).
#[derive(Debug)]
struct Fenwick {
    /// 1-based: `tree[i]` holds the sum of the `i & -i` counts ending at
    /// index `i - 1`. `tree[0]` is unused.
    tree: Vec<u32>,
}

impl Fenwick {
    fn new(size: usize) -> Self {
        Fenwick {
            tree: vec![0; size + 1],
        }
    }

    /// A tree of `size` counts, the first ones from `counts`, in O(size).
    fn from_counts(size: usize, counts: impl Iterator<Item = u32>) -> Self {
        let mut tree = vec![0; size + 1];
        for (i, count) in counts.enumerate() {
            tree[i + 1] = count;
        }
        // Each node passes its sum on to its parent once.
        for i in 1..=size {
            let parent = i + (i & i.wrapping_neg());
            if parent <= size {
                tree[parent] += tree[i];
            }
        }
        Fenwick { tree }
    }

    fn len(&self) -> usize {
        self.tree.len() - 1
    }

    fn add(&mut self, index: usize, delta: i32) {
        let mut i = index + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// The sum of the counts at indices `0..=index`.
    fn prefix_sum(&self, index: usize) -> u32 {
        let mut i = index + 1;
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }
}

#[cfg(test)]
mod tests;
