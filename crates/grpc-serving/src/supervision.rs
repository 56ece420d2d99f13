//! The parts a server cannot work without, watched from one place.
//!
//! A server runs tasks beside its calls that it cannot serve without: the
//! café's baristas, its order store's writer, its following of a shared
//! line. A task spawned on its own that panics or returns early dies in
//! silence: its `JoinHandle` holds the panic until someone asks, and nobody
//! asks before closing. Meanwhile the server answers SERVING and takes work
//! that nobody does.
//!
//! So each such task runs inside [`Critical::watch`], which turns its end
//! into news: a panic, or a return while the server still serves, is a
//! [`Fault`]. [`crate::Server::serve`] waits for the first fault beside the
//! shutdown signal; on one it logs why, closes as it would on SIGTERM
//! (health `NOT_SERVING` first, the work in hand finished or kept within the
//! grace) and returns [`crate::StartupError::Fault`], so the process exits
//! non-zero and its supervisor (systemd, Kubernetes, Docker's restart
//! policy) starts it again on the same store. From the moment closing
//! begins, parts may end: a barista's shift is over then.
//!
//! A crash is not mended in place (a barista restarted in the same
//! process): what broke one task may have broken the state it shared, and a
//! fresh process rebuilds everything from the store, which is what the
//! store is for.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::FutureExt;
use tokio::sync::watch;
use tracing::error;

/// A part that stopped while the server served: which, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} {how}")]
pub struct Fault {
    /// The part, as named to [`Critical::watch`] (`barista Ana`, `the
    /// order store's writer`).
    pub part: String,
    /// How it stopped: `panicked: …`, or `ended early`.
    pub how: String,
}

/// The server's critical parts. Clones share them: [`crate::Server`] holds
/// one, and hands one to whatever spawns the parts
/// ([`crate::Server::critical`]).
#[derive(Debug, Clone, Default)]
pub struct Critical(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// The first fault, if any: later ones are logged, not kept.
    first: watch::Sender<Option<Fault>>,
    /// Set when closing begins: from then on a part may end.
    closing: AtomicBool,
}

impl Critical {
    /// No parts yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `task`, watched as the part named `part`: if it panics, or returns
    /// before the server closes, that is the server's fault (see the
    /// module docs). The panic is caught here, so the returned future ends
    /// normally either way: spawn it as the task was.
    pub fn watch<P, T>(&self, part: P, task: T) -> impl Future<Output = ()> + Send + use<P, T>
    where
        P: Into<String>,
        T: Future<Output = ()> + Send,
    {
        let critical = self.clone();
        let part = part.into();
        // A combinator, not an `async` block that awaits `task`: such a
        // block keeps `task` twice (as captured, and as awaited), and a
        // part's future lives as long as the server (100,000 baristas).
        //
        // AssertUnwindSafe: the task's state dies with it, and the
        // server rebuilds from its store in a new process; nothing here
        // reads what the panic may have left half-changed.
        AssertUnwindSafe(task).catch_unwind().map(move |ended| {
            let how = match ended {
                Ok(()) if critical.is_closing() => return,
                Ok(()) => "ended early".to_owned(),
                Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            };
            critical.failed(Fault { part, how });
        })
    }

    /// Closing has begun: parts may end from now on (a panic is still
    /// logged).
    pub fn closing(&self) {
        self.0.closing.store(true, Ordering::Release);
    }

    fn is_closing(&self) -> bool {
        self.0.closing.load(Ordering::Acquire)
    }

    /// Logs `fault` and, if it is the first while serving, makes it the one
    /// [`Critical::first_fault`] resolves with.
    fn failed(&self, fault: Fault) {
        if self.is_closing() {
            error!(part = %fault.part, how = %fault.how, "a part stopped while the server closed");
            return;
        }
        error!(part = %fault.part, how = %fault.how,
               "a part the server cannot work without stopped: closing, to be restarted");
        self.0.first.send_if_modified(|first| {
            if first.is_some() {
                return false;
            }
            *first = Some(fault);
            true
        });
    }

    /// Resolves with the first fault while serving; never, if none comes.
    pub async fn first_fault(&self) -> Fault {
        let mut first = self.0.first.subscribe();
        // The channel's read guard is let go within the statement.
        let fault = first
            .wait_for(Option::is_some)
            .await
            .map(|fault| fault.clone());
        match fault {
            Ok(fault) => fault.expect("waited for Some"),
            // The sender lives in `self`: it cannot close while this waits.
            Err(_) => std::future::pending().await,
        }
    }
}

/// What a panic said, when it said it with a string (as `panic!` and
/// `expect` do).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_the_first_fault_and_names_its_part() {
        let critical = Critical::new();
        tokio::spawn(critical.watch("barista Ana", async { panic!("dropped the cup") }));
        let fault = critical.first_fault().await;
        assert_eq!(fault.part, "barista Ana");
        assert_eq!(fault.how, "panicked: dropped the cup");
    }

    #[tokio::test]
    async fn a_part_that_returns_while_serving_is_a_fault() {
        let critical = Critical::new();
        critical.watch("the writer", async {}).await;
        assert_eq!(critical.first_fault().await.how, "ended early");
    }

    #[tokio::test(start_paused = true)]
    async fn once_closing_a_part_may_end() {
        let critical = Critical::new();
        critical.closing();
        critical.watch("barista Ana", async {}).await;
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(60), critical.first_fault()).await;
        assert!(waited.is_err(), "{waited:?}");
    }
}
