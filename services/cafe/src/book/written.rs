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

use cafe_core::order::OrderId;

use super::entry::{Change, OrderEntry, Seq};

/// One change the book made, as it hands it to its [`Recorder`].
#[derive(Debug, Clone, Copy)]
pub enum Written<'a> {
    /// A new order, as placed.
    Placed(&'a OrderEntry, &'a Change),
    /// A change of status, barista, times or note.
    Changed(&'a OrderEntry, &'a Change),
    /// A finished order the book no longer remembers (retention).
    Forgotten(&'a OrderId),
}

/// Whoever writes the book's changes down. Called under the book's lock:
/// it must only append, never wait.
pub trait Recorder: std::fmt::Debug + Send + Sync {
    /// Takes one change; returns its number.
    fn record(&self, written: Written<'_>) -> Seq;

    /// The highest number durable so far, as a channel that is told each
    /// time it moves.
    fn durable_mark(&self) -> &watch::Sender<Seq>;
}
