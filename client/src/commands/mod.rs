//! One module per command. Each takes an open [`Connection`] (or opens its
//! own) and an [`Output`], prints its results, and says whether it ran to
//! the end or was interrupted.
//!
//! [`Connection`]: crate::connection::Connection
//! [`Output`]: crate::output::Output

pub mod bench;
pub mod board;
#[cfg(feature = "demo")]
pub mod demo;
pub mod events;
pub mod health;
pub mod manual;
pub mod menu;
pub mod order;
pub mod orders;
pub mod rush;
pub mod stats;

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// It did what it was asked.
    Done,
    /// Ctrl-C stopped it; it has printed what it had done.
    Interrupted,
}

/// Resolves on Ctrl-C. If the handler cannot be installed (no signals
/// here), it never resolves rather than stopping the command at once.
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
