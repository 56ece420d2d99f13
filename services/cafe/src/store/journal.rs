//! The journal: the book's changes on their way to the store, and the mark
//! of how far they are durable.
//!
//! The book appends a [`Record`] for every change it makes, under its own
//! lock, so the journal's order is the order things happened; each append
//! gets a sequence number ([`Seq`]), kept with the change. One writer, on a
//! thread of its own ([`write()`]), takes every record appended so far and
//! writes them in one transaction: **group commit**. While one commit is on
//! its way to disk, the next batch gathers behind it, so a busy café pays
//! one commit (and one wake-up of the writer) for many orders rather than
//! one each, and a quiet one commits a change as soon as a short gather
//! window has passed (see `Journal::next_batch`).
//!
//! After each commit the writer marks its batch durable ([`Durability`]).
//! Whatever tells a customer something they may rely on (the ticket, the
//! counter's answer, a cancel, READY) waits for its change's number first
//! ([`Durability::durable`]), woken by its own batch's commit: a customer
//! is never told of an order the café could forget. While the store
//! cannot be written, the mark says so, and those waiting are answered
//! `UNAVAILABLE` rather than left hanging; the writer keeps trying, and
//! once a write succeeds everything pending is committed in order.
//!
//! Before it is written, a batch is folded (`coalesce`): an order placed
//! and finished in the same batch (a busy café's usual case) is one
//! `INSERT` of its final row, not an `INSERT` and two `UPDATE`s.
//!
//! Appending takes a small lock of its own, never held across `.await`,
//! inside the book's lock; the writer takes it only to swap the batch out.
//! The writer blocks (on that lock's condition variable, then on the
//! disk), which is why it has a thread and not a task.

use std::{
    collections::HashMap,
    mem,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Duration,
};

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::{Record, Row, Store, rows};
pub use crate::book::Seq;
use crate::{
    availability::Availability,
    book::{Durability, Recorder, Written},
    injected_panic,
};

/// After this many failed attempts in a row, the café stops taking orders
/// until a write succeeds again.
const FAILURES_BEFORE_REFUSING: u32 = 3;

/// The longest pause between two attempts at a failing write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a change that wakes an idle writer waits for others to share
/// its commit (see `Journal::next_batch`): short beside any brew, and
/// below what a customer notices.
const GATHER: Duration = Duration::from_micros(500);

/// The book's changes not yet written, and how far writing has come.
#[derive(Debug)]
pub struct Journal {
    pending: Mutex<Pending>,
    /// Wakes the writer for the first record of a batch (or the close).
    wake: Condvar,
    /// How far the store has come, as the writer last saw it.
    written: Durability,
}

#[derive(Debug, Default)]
struct Pending {
    /// Appended, not yet taken by the writer.
    records: Vec<Record>,
    /// The number of the last record appended.
    last: Seq,
    /// No more records will come: the writer ends once it has written
    /// what is here.
    closed: bool,
}

impl Default for Journal {
    fn default() -> Self {
        Self::new()
    }
}

impl Journal {
    /// An empty journal.
    pub fn new() -> Self {
        Journal {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            written: Durability::default(),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Appending cannot leave the batch half-changed: a poisoned lock is
        // used as it is.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `record`; returns its number.
    pub fn append(&self, record: Record) -> Seq {
        let mut pending = self.pending();
        pending.last += 1;
        let first_of_batch = pending.records.is_empty();
        pending.records.push(record);
        let seq = pending.last;
        drop(pending);
        // The writer takes the whole batch, so only its first record needs
        // to wake it; while it writes it is not waiting, and it looks at
        // the batch again before it waits.
        if first_of_batch {
            self.wake.notify_one();
        }
        seq
    }

    /// Waits until everything appended so far is durable, however long the
    /// store takes to become writable again.
    pub async fn flushed(&self) {
        let last = self.pending().last;
        self.written.kept(last).await;
    }

    /// No more records will be appended: the writer writes what is left
    /// and ends.
    pub fn close(&self) {
        self.pending().closed = true;
        self.wake.notify_one();
    }

    /// Waits for the next batch and swaps it for `spare` (an empty vector,
    /// so the batches reuse two allocations); `None` once closed and
    /// empty. Blocks the writer's thread.
    ///
    /// A batch that was already waiting (a busy café: it gathered while
    /// the last one was written) is taken at once. A record that wakes an
    /// idle writer is given [`GATHER`] for others to join it before the
    /// commit (as PostgreSQL's `commit_delay` does): a commit's cost is
    /// mostly per commit, not per record, and a café at a steady pace
    /// would otherwise pay one for nearly every change. Nobody is told of
    /// a change before its commit either way; the window only delays it.
    fn next_batch(&self, spare: &mut Vec<Record>) -> Option<Seq> {
        let mut pending = self.pending();
        let mut waited = false;
        loop {
            if !pending.records.is_empty() {
                if waited && !pending.closed {
                    drop(pending);
                    std::thread::sleep(GATHER);
                    pending = self.pending();
                }
                mem::swap(&mut pending.records, spare);
                // Under the batch's lock: every number up to `last` is in
                // this batch, every later one in the next.
                self.written.taken(pending.last);
                return Some(pending.last);
            }
            if pending.closed {
                return None;
            }
            waited = true;
            pending = self
                .wake
                .wait(pending)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// The book hands the journal each change under its lock: appended as the
/// store's record, in the book's order.
impl Recorder for Journal {
    fn record(&self, written: Written<'_>) -> Seq {
        self.append(rows::record(written))
    }

    fn durability(&self) -> &Durability {
        &self.written
    }
}

/// The writer: takes each batch the book appended and writes it to
/// `store` in one transaction, then marks it durable. Started once per
/// café; runs on a thread of its own (it blocks on the disk) and resolves
/// after [`Journal::close`], once the last batch is written and the store
/// closed.
///
/// A failing write is logged and tried again, with a growing pause, for as
/// long as it takes: nothing is acknowledged meanwhile. After
/// three failures in a row (`FAILURES_BEFORE_REFUSING`) the café refuses new
/// orders (UNAVAILABLE, through `availability`, which also turns health
/// NOT_SERVING) and answers those waiting for a write UNAVAILABLE, until
/// a write succeeds.
pub async fn write(journal: Arc<Journal>, store: Store, availability: Arc<Availability>) {
    // The thread hands its end to this future, which is what the café
    // watches as a critical part and awaits (with a time limit) when it
    // closes. A panic on the thread is caught there and resumed here, so
    // the café's supervision sees the writer die as it would see a task.
    let (ended, on_end) = oneshot::channel();
    let on_thread = Arc::clone(&journal);
    let spawned = std::thread::Builder::new()
        .name("cafe-journal".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // If the writer dies (a panic unwinds through here), nobody
                // would ever mark the waiting changes durable: the guard
                // tells their waiters the store cannot be written, so they
                // are answered UNAVAILABLE while the café closes, rather
                // than left hanging.
                let running = WriterRunning(&on_thread);
                write_all(&on_thread, &store, &availability);
                store.close();
                // Ended as it should: nothing for the guard to say.
                mem::forget(running);
            }));
            let _ = ended.send(outcome);
        });
    match spawned {
        Ok(thread) => {
            let _ends_with_this = EndsWithTheWriter {
                journal: &journal,
                thread: Some(thread),
            };
            match on_end.await {
                Ok(Ok(())) => {}
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                // The thread sends before it ends, even after a panic; if
                // it did not, this part ends early and the café's
                // supervision says so.
                Err(_) => {}
            }
        }
        Err(error) => {
            // Nothing can be kept: said out loud, everyone waiting is
            // answered UNAVAILABLE, and this part ends early (the café
            // closes).
            let why = format!("cannot start the order store's writer: {error}");
            error!(%error, "cannot start the order store's writer");
            journal.written.failing(why);
        }
    }
}

/// Held by [`write()`] while its thread runs. If the future is dropped
/// before the thread ends (the café's task aborted: its runtime shut down
/// under it, as a test's in-process "crash" does), the thread would wait
/// for the next batch for ever, holding the store's file and its lock, and
/// no café could open them again in this process. Dropped, it closes the
/// journal (the thread writes what is left and ends) and waits a moment
/// for the thread, so the lock is let go of when the café is gone.
struct EndsWithTheWriter<'a> {
    journal: &'a Journal,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The longest a dropped writer future waits for its thread to end (a
/// thread retrying a write on a full disk would never end).
const WRITER_ENDS_WITHIN: Duration = Duration::from_secs(5);

impl Drop for EndsWithTheWriter<'_> {
    fn drop(&mut self) {
        self.journal.close();
        let Some(thread) = self.thread.take() else {
            return;
        };
        // std's JoinHandle has no join with a time limit: look, briefly.
        let until = std::time::Instant::now() + WRITER_ENDS_WITHIN;
        while !thread.is_finished() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The writer's loop: one batch at a time until the journal is closed.
fn write_all(journal: &Journal, store: &Store, availability: &Availability) {
    let mut batch = Vec::new();
    while let Some(last) = journal.next_batch(&mut batch) {
        injected_panic::step("writer");
        let folded = coalesce(mem::take(&mut batch));
        let rows: Vec<Row<'_>> = folded.iter().map(Record::row).collect();
        write_batch(journal, store, &rows, availability);
        drop(rows);
        journal.written.written(last);
        // The folded batch's vector is the next spare.
        batch = folded;
        batch.clear();
    }
}

/// Alive while the writer runs; dropped other than at its end, it says the
/// store cannot be written (see [`write()`]).
struct WriterRunning<'a>(&'a Journal);

impl Drop for WriterRunning<'_> {
    fn drop(&mut self) {
        self.0
            .written
            .failing("the order store's writer stopped".to_owned());
    }
}

/// Writes one batch, retrying until it is written.
fn write_batch(journal: &Journal, store: &Store, batch: &[Row<'_>], availability: &Availability) {
    let mut failures = 0u32;
    let mut pause = Duration::from_millis(50);
    loop {
        match store.write(batch) {
            Ok(()) => {
                if failures >= FAILURES_BEFORE_REFUSING {
                    info!(failures, "the order store is writable again");
                    availability.store_writable();
                }
                return;
            }
            Err(error) => {
                failures += 1;
                warn!(%error, failures, records = batch.len(), ?pause,
                      "cannot write to the order store; trying again");
                if failures == FAILURES_BEFORE_REFUSING {
                    let why = error.to_string();
                    availability.store_unwritable(why.clone());
                    journal.written.failing(why);
                }
                // This thread has nothing else to do meanwhile.
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Folds a batch into the rows it leaves, one record per order: a change
/// to an order placed in this batch is applied to its row before the
/// `INSERT`, an order changed twice is written as of its last change, and
/// an order forgotten in this batch is not changed first (nor written at
/// all, if it was placed in it).
fn coalesce(batch: Vec<Record>) -> Vec<Record> {
    let mut folded: Vec<Option<Record>> = Vec::with_capacity(batch.len());
    // Where each order's record is in `folded`, by ticket.
    let mut at: HashMap<i64, usize> = HashMap::with_capacity(batch.len());
    for record in batch {
        match record {
            Record::Placed(entry, now) => {
                at.insert(now.ticket, folded.len());
                folded.push(Some(Record::Placed(entry, now)));
            }
            Record::Changed(change) => match at.get(&change.ticket).map(|&i| &mut folded[i]) {
                Some(Some(Record::Placed(_, now) | Record::Changed(now))) => *now = change,
                _ => {
                    at.insert(change.ticket, folded.len());
                    folded.push(Some(Record::Changed(change)));
                }
            },
            Record::Forgotten(ticket) => {
                let earlier = at.remove(&ticket).and_then(|i| folded[i].take());
                if !matches!(earlier, Some(Record::Placed(..))) {
                    folded.push(Some(Record::Forgotten(ticket)));
                }
            }
        }
    }
    folded.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use cafe_domain::order::OrderStatus;

    use super::*;
    use crate::{
        book::Origin,
        store::{StoredOrder, from_micros, record::Changed, rows::entry_from},
    };

    fn placed(id: &str, ticket: i64) -> Record {
        let row = StoredOrder {
            id: id.into(),
            ticket,
            customer: "Ada".into(),
            drink: "latte".into(),
            size: 2,
            request_id: None,
            claim_token: "0".repeat(32),
            placed_at: 1,
            status: 1,
            barista: None,
            started_at: None,
            ready_at: None,
            note: None,
            finished_at: None,
            cafe_id: None,
        };
        let entry = Arc::new(entry_from(&row, Origin::default()).unwrap());
        let now = Changed::of(ticket, &entry.latest());
        Record::Placed(entry, now)
    }

    fn changed(ticket: i64, status: OrderStatus) -> Record {
        let ready = status == OrderStatus::Ready;
        Record::Changed(Changed {
            ticket,
            status,
            barista: Some("Ana".into()),
            started_at: Some(from_micros(2)),
            ready_at: ready.then(|| from_micros(3)),
            note: None,
            finished_at: ready.then(|| from_micros(3)),
        })
    }

    #[test]
    fn a_batch_folds_into_the_rows_it_leaves() {
        let batch = vec![
            changed(0, OrderStatus::Ready),
            placed("a", 1),
            changed(1, OrderStatus::Brewing),
            placed("b", 2),
            changed(1, OrderStatus::Ready),
            Record::Forgotten(9),
            placed("c", 3),
            changed(3, OrderStatus::Ready),
            Record::Forgotten(3),
        ];
        let folded = coalesce(batch);
        let rows: Vec<Row<'_>> = folded.iter().map(Record::row).collect();
        let Row::Insert(a) = rows[1] else {
            panic!("{rows:?}")
        };
        assert_eq!(
            (a.now.status, a.now.ready_at, a.now.finished_at),
            (3, Some(3), Some(3))
        );
        assert_eq!(a.now.barista, Some("Ana"));
        let expected = [
            changed(0, OrderStatus::Ready),
            placed("b", 2),
            Record::Forgotten(9),
        ];
        assert_eq!(
            rows,
            [
                expected[0].row(),
                rows[1],
                expected[1].row(),
                expected[2].row(),
            ]
        );
    }

    #[test]
    fn a_batch_leaves_one_record_per_order() {
        let batch = vec![
            changed(0, OrderStatus::Brewing),
            changed(8, OrderStatus::Brewing),
            placed("a", 1),
            changed(0, OrderStatus::Ready),
            changed(8, OrderStatus::Ready),
            Record::Forgotten(8),
        ];
        let folded = coalesce(batch);
        let rows: Vec<Row<'_>> = folded.iter().map(Record::row).collect();
        let expected = [
            changed(0, OrderStatus::Ready),
            placed("a", 1),
            Record::Forgotten(8),
        ];
        let Row::Insert(a) = rows[1] else {
            panic!("{rows:?}")
        };
        assert_eq!(rows, [expected[0].row(), Row::Insert(a), expected[2].row()]);
        assert_eq!(Row::Insert(a), expected[1].row());
    }
}
