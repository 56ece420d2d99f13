//! The order board over the counter (`WatchBoard`): the orders open when a
//! watcher starts, then every status change of every order as it happens.
//!
//! The book's board is a `tokio::sync::broadcast` channel: each watcher has
//! its own receiver, and one that falls too far behind skips what it missed
//! (logged) rather than holding the café back. The stream ends cleanly
//! (status OK) when the café closes.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument, warn};

use super::{EventStream, STREAM_BUFFER, event};
use crate::book::OrderBook;

/// The board as a stream, fed by a spawned task.
pub(super) fn events(book: Arc<OrderBook>) -> EventStream {
    let (open, mut updates) = book.watch_board();
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);

    // The producer runs in its own task and writes into a channel; the
    // response stream is the channel's other end. When the client hangs
    // up, tonic drops the receiver, `tx.closed()` fires and the task
    // ends: no orphaned work.
    let producer = async move {
        for update in &open {
            if tx.send(Ok(event(update))).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                // The café is closing: end the stream cleanly (status OK).
                () = book.closed() => return,
                () = tx.closed() => return,
                received = updates.recv() => match received {
                    Ok(update) => {
                        if tx.send(Ok(event(&update))).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "a board watcher fell behind and missed updates");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    };
    // The task's logs belong to this call's span.
    tokio::spawn(producer.in_current_span());
    Box::pin(ReceiverStream::new(rx))
}
