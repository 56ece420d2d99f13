//! The buzzer (`OrderWithBuzzer`, and `WatchOrder` to come back to one):
//! the asynchronous way.
//!
//! The handler returns a stream at once; a spawned task follows the order
//! and writes each change into a channel whose other end is the response
//! stream. When the customer hangs up, tonic drops the receiver,
//! `tx.closed()` fires and the task ends: no orphaned work. The buzzer
//! shows the line moving too, at the rate the book tells it (see
//! [`crate::book::Follower::with_positions`]).
//!
//! A café with a durable store that closes keeps the order for its restart
//! ([`crate::book::OrderBook::left_for_restart`]): the stream then ends
//! `UNAVAILABLE` saying so (not with an event: the order has not changed),
//! and the customer follows it again with `WatchOrder` once the café is
//! back.

use opentelemetry::KeyValue;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument, Span, field::Empty, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{EventStream, STREAM_BUFFER, event, phases::Phases};
use crate::{book::Follower, error::CafeError};

/// The buzzer: the followed order's changes as a stream that ends OK once
/// the order has ended. The first event carries `ticket_token` if given.
///
/// The producing task runs in a `buzzer` span, child of the call's span,
/// that ends with the stream; each event sent is a span event on it, and
/// the order's `queue.wait` and `brewing` phases are spans under it.
pub(super) fn events(follower: Follower, ticket_token: Option<String>) -> EventStream {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let buzzer = info_span!("buzzer", order.id = %follower.entry().id(), barista = Empty);
    let task = async move {
        let mut follower = follower.with_positions();
        let mut phases = Phases::default();
        let mut ticket_token = ticket_token;
        loop {
            let update = tokio::select! {
                update = follower.next() => update,
                () = tx.closed() => return, // the customer hung up
            };
            // `None`: the order has ended and its last change was sent, so
            // dropping `tx` ends the stream with status OK; or the closing
            // café kept the order, still open, for its restart.
            let Some(update) = update else {
                let entry = follower.entry();
                if !entry.status().is_final() {
                    let kept = CafeError::KeptForRestart(entry.id().clone());
                    let _ = tx.send(Err(kept.into())).await;
                }
                return;
            };
            phases.observe(&update.order, update.queue_position);
            Span::current().add_event(
                "buzz",
                vec![
                    KeyValue::new("order.status", update.order.status.as_str()),
                    KeyValue::new("queue.position", i64::from(update.queue_position)),
                ],
            );
            let mut event = event(&update);
            event.claim_token = ticket_token.take().unwrap_or_default();
            if tx.send(Ok(event)).await.is_err() {
                return; // the customer hung up
            }
        }
    };
    // The span goes with the task: whichever way the task ends (order
    // finished, customer hung up), the span ends with it.
    tokio::spawn(task.instrument(buzzer));
    Box::pin(ReceiverStream::new(rx))
}
