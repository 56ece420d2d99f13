//! What the book tells whoever writes its changes down: a durable store's
//! journal (the `store` module's).
//!
//! The book makes every change under its one lock, and hands it to its
//! [`Recorder`] there and then, so the records come in the order the
//! changes happened and each change carries its record's number
//! ([`Seq`]). The book does not know where the records go, nor how they
//! are written: it only asks, before telling a customer of a change,
//! whether that number is durable yet (see [`super::Follower`]).
//!
//! [`Durability`] is that answer, and the wait for it. The recorder writes
//! its records in batches, one at a time, each a run of numbers, and
//! whoever waits for a number is woken by *its* batch's commit only: one
//! [`Notify`] for the batch being written and one for the batch gathering
//! behind it, swapped as the writer takes each batch. (A channel of the
//! highest durable number would wake every waiter at every commit, most of
//! them to find their own change still on its way.)

use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::Notify;

use super::entry::{Change, OrderEntry, Seq};
use crate::error::CafeError;

/// One change the book made, as it hands it to its [`Recorder`].
#[derive(Debug, Clone, Copy)]
pub enum Written<'a> {
    /// A new order, as placed.
    Placed(&'a Arc<OrderEntry>, &'a Change),
    /// A change of status, barista, times or note.
    Changed(&'a OrderEntry, &'a Change),
    /// A finished order the book no longer remembers (retention).
    Forgotten(&'a OrderEntry),
}

/// Whoever writes the book's changes down. Called under the book's lock:
/// it must only append, never wait.
pub trait Recorder: std::fmt::Debug + Send + Sync {
    /// Takes one change; returns its number.
    fn record(&self, written: Written<'_>) -> Seq;

    /// How far the changes are durable, and the wait for a number.
    fn durability(&self) -> &Durability;
}

/// How far a [`Recorder`]'s changes are kept, moved on by its writer
/// ([`Durability::taken`], [`Durability::written`],
/// [`Durability::failing`]) and waited for by the book.
#[derive(Debug, Default)]
pub struct Durability {
    /// The highest number durable: read without the lock by
    /// [`Durability::is_durable`], written under it.
    durable: AtomicU64,
    mark: Mutex<Mark>,
}

#[derive(Debug, Default)]
struct Mark {
    /// The last number of the batch being written; the numbers above it
    /// gather for the next batch.
    taken: Seq,
    /// Why the store cannot be written right now, after repeated failures;
    /// `None` while writes succeed.
    failing: Option<String>,
    /// Wakes the waiters of the batch being written.
    writing: Arc<Notify>,
    /// Wakes the waiters of the batch gathering behind it.
    gathering: Arc<Notify>,
}

impl Durability {
    fn mark(&self) -> MutexGuard<'_, Mark> {
        // Every change to the mark is a whole assignment: a poisoned lock
        // holds a whole mark.
        self.mark
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the change numbered `seq` is durable.
    pub fn is_durable(&self, seq: Seq) -> bool {
        self.durable.load(Ordering::Acquire) >= seq
    }

    /// The writer has taken every record up to `last` into the batch it
    /// writes now: their waiters are that batch's. The waiters' `Notify`
    /// moves with the batch, so a waiter that chose it a moment before
    /// stays with its own batch.
    pub fn taken(&self, last: Seq) {
        let mut mark = self.mark();
        let Mark {
            taken,
            writing,
            gathering,
            ..
        } = &mut *mark;
        *taken = last;
        // The last batch's `Notify` is reused for the next one: anyone
        // still holding it looks again at the mark once enabled.
        std::mem::swap(writing, gathering);
    }

    /// Every record up to `last` is durable (the batch taken last was
    /// committed): its waiters are woken, and the store writes again.
    pub fn written(&self, last: Seq) {
        let mut mark = self.mark();
        self.durable.store(last, Ordering::Release);
        mark.failing = None;
        mark.writing.notify_waiters();
    }

    /// The store cannot be written (`why`): everyone waiting is woken, and
    /// those who must not wait for a failing store are answered at once.
    pub fn failing(&self, why: String) {
        let mut mark = self.mark();
        mark.failing = Some(why);
        mark.writing.notify_waiters();
        mark.gathering.notify_waiters();
    }

    /// Waits until the change numbered `seq` is durable, or fails with
    /// [`CafeError::StoreUnwritable`] as soon as the store is known not to
    /// be writable: an acknowledgement is never sent for a change that is
    /// not on disk, and nobody waits on a store that is failing. The
    /// change itself stays with the recorder and is written once the store
    /// recovers.
    pub async fn durable(&self, seq: Seq) -> Result<(), CafeError> {
        self.wait(seq, true).await
    }

    /// Waits until the change numbered `seq` is durable, however long the
    /// store takes to become writable again (what a board waits for
    /// before it shows a final status, and a closing café before it lets
    /// go).
    pub async fn kept(&self, seq: Seq) {
        // Only a wait that gives up on a failing store returns an error.
        let _ = self.wait(seq, false).await;
    }

    async fn wait(&self, seq: Seq, give_up_if_failing: bool) -> Result<(), CafeError> {
        loop {
            if self.is_durable(seq) {
                return Ok(());
            }
            // The batch `seq` is in: the one being written, or the one
            // gathering behind it.
            let batch = {
                let mark = self.mark();
                if let Some(why) = mark.failing.as_ref().filter(|_| give_up_if_failing) {
                    if self.is_durable(seq) {
                        return Ok(());
                    }
                    return Err(CafeError::StoreUnwritable(why.clone()));
                }
                if seq <= mark.taken {
                    Arc::clone(&mark.writing)
                } else {
                    Arc::clone(&mark.gathering)
                }
            };
            let committed = batch.notified();
            tokio::pin!(committed);
            // Registered before looking again, so a commit between the
            // look above and the wait below is not missed.
            committed.as_mut().enable();
            if self.is_durable(seq) {
                return Ok(());
            }
            if give_up_if_failing && self.mark().failing.is_some() {
                continue;
            }
            committed.await;
        }
    }
}
