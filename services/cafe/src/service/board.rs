//! The order board over the counter (`WatchBoard`): the orders open when a
//! watcher starts, then every status change of every order as it happens.
//!
//! The book's board is a `tokio::sync::broadcast` channel: each watcher has
//! its own receiver, and one that falls too far behind skips what it missed
//! (logged) rather than holding the café back. The stream ends cleanly
//! (status OK) when the café closes.
//!
//! A final status is shown once the store has kept it, as a customer is
//! told it: a board never shows READY for a drink that a crash a moment
//! later would send back to be brewed again. QUEUED and BREWING are shown
//! at once (a restart may hand a drink back to the line: BREWING → QUEUED).

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
                        if update.order.status.is_final() {
                            book.kept(update.seq).await;
                        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cafe_domain::{order::NewOrder, proto::v1 as pb};
    use futures::StreamExt;

    use super::*;
    use crate::{
        availability::Availability,
        book::Origin,
        store::{Journal, Store, journal},
    };

    #[tokio::test]
    async fn the_board_shows_a_final_status_only_once_the_store_has_kept_it() {
        let availability = Arc::new(Availability::new());
        let journal = Arc::new(Journal::new());
        let book = Arc::new(OrderBook::with_journal(
            100,
            Arc::clone(&availability),
            100,
            Some(Arc::clone(&journal) as _),
        ));
        let mut board = events(Arc::clone(&book));
        let request = NewOrder::parse("Ada", "latte", Ok(None), "").unwrap();
        let entry = book.place(request, Origin::default()).unwrap().entry;
        assert!(book.start(&entry, "Ana".into()));
        assert!(book.ready(&entry));

        // Nothing is written yet (no writer runs): QUEUED and BREWING show,
        // READY does not.
        let status = |event: Option<Result<pb::OrderEvent, _>>| {
            event.unwrap().unwrap().order.unwrap().status
        };
        assert_eq!(status(board.next().await), pb::OrderStatus::Queued as i32);
        assert_eq!(status(board.next().await), pb::OrderStatus::Brewing as i32);
        let early = tokio::time::timeout(Duration::from_millis(200), board.next()).await;
        assert!(early.is_err(), "READY shown before it was kept: {early:?}");

        // Once the journal is written, READY shows.
        tokio::spawn(journal::write(journal, Store::Memory, availability));
        assert_eq!(status(board.next().await), pb::OrderStatus::Ready as i32);
    }
}
