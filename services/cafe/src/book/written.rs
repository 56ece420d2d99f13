//! What the book tells whoever writes its changes down: a durable store's
//! journal (the `store` module's).
//!
//! The book makes every change under its one lock, and hands it to its
//! [`Recorder`] there and then, so the records come in the order the
//! changes happened and each change carries its record's number
//! ([`Seq`]). The book does not know where the records go, nor how they
//! are written: it only asks, before telling a customer of a change,
//! whether that number is durable yet (see [`super::Follower`]).

use tokio::sync::watch;

use super::entry::{Change, OrderEntry, Seq};
use crate::error::CafeError;

/// One change the book made, as it hands it to its [`Recorder`].
#[derive(Debug, Clone, Copy)]
pub enum Written<'a> {
    /// A new order, as placed.
    Placed(&'a OrderEntry, &'a Change),
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

    /// How far the changes are durable, as a channel that is told each
    /// time that moves.
    fn durability(&self) -> &watch::Sender<Durability>;
}

/// How far a [`Recorder`]'s changes are kept.
#[derive(Debug, Clone, Default)]
pub struct Durability {
    /// The highest number durable.
    pub durable: Seq,
    /// Why the store cannot be written right now, after repeated failures;
    /// `None` while writes succeed.
    pub failing: Option<String>,
}

/// Waits until the change numbered `seq` is durable, however long the
/// store takes to become writable again (what a board waits for before it
/// shows a final status, and a closing café before it lets go).
pub async fn kept(mark: &watch::Sender<Durability>, seq: Seq) {
    let mut written = mark.subscribe();
    // The sender lives with the recorder, which the caller holds.
    let _ = written.wait_for(|now| now.durable >= seq).await;
}

/// Waits until the change numbered `seq` is durable, or fails with
/// [`CafeError::StoreUnwritable`] as soon as the store is known not to be
/// writable: an acknowledgement is never sent for a change that is not on
/// disk, and nobody waits on a store that is failing. The change itself
/// stays with the recorder and is written once the store recovers.
pub async fn durable(mark: &watch::Sender<Durability>, seq: Seq) -> Result<(), CafeError> {
    if mark.borrow().durable >= seq {
        return Ok(());
    }
    // The sender lives with the recorder, which the caller holds, so the
    // channel cannot close while this waits.
    let mut written = mark.subscribe();
    let Ok(now) = written
        .wait_for(|now| now.durable >= seq || now.failing.is_some())
        .await
    else {
        unreachable!("the recorder outlives its waiters")
    };
    match &now.failing {
        Some(why) if now.durable < seq => Err(CafeError::StoreUnwritable(why.clone())),
        _ => Ok(()),
    }
}
