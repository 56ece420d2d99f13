//! The buzzer (`OrderWithBuzzer`, and `WatchOrder` to come back to one):
//! the asynchronous way.
//!
//! The handler returns a stream at once. The stream *is* the follower: each
//! time tonic asks for the next event, it waits for the order's next change
//! (see [`Follower::next`]) and turns it into an event. No task is spawned
//! and no channel sits between the two, so an open buzzer costs only its
//! state (the follower, the span, the phases); when the customer hangs up,
//! tonic drops the stream and all of it goes at once: no orphaned work. The
//! buzzer shows the line moving too, at the rate the book tells it (see
//! [`crate::book::Follower::with_positions`]).
//!
//! A café with a durable store that closes keeps the order for its restart
//! ([`crate::book::OrderBook::left_for_restart`]): the stream then ends
//! `UNAVAILABLE` saying so (not with an event: the order has not changed),
//! and the customer follows it again with `WatchOrder` once the café is
//! back.

use futures::stream;
use opentelemetry::KeyValue;
use tracing::{Instrument, Span, field::Empty, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{EventStream, event, phases::Phases};
use crate::{book::Follower, error::CafeError};

/// What an open buzzer holds between two events.
struct Buzzer {
    /// `None` once the stream has said its last word.
    follower: Option<Follower>,
    phases: Phases,
    /// Sent with the first event only.
    ticket_token: Option<String>,
    /// The `buzzer` span: it ends when the stream is dropped.
    span: Span,
}

/// The buzzer: the followed order's changes as a stream that ends OK once
/// the order has ended. The first event carries `ticket_token` if given.
///
/// The stream's work runs in a `buzzer` span, child of the call's span,
/// that ends with the stream; each event sent is a span event on it, and
/// the order's `queue.wait` and `brewing` phases are spans under it.
pub(super) fn events(follower: Follower, ticket_token: Option<String>) -> EventStream {
    let span = info_span!("buzzer", order.id = %follower.entry().id(), barista = Empty);
    let buzzer = Buzzer {
        follower: Some(follower.with_positions()),
        phases: Phases::default(),
        ticket_token,
        span,
    };
    Box::pin(stream::unfold(buzzer, |mut buzzer| async move {
        let follower = buzzer.follower.as_mut()?;
        let update = follower.next().instrument(buzzer.span.clone()).await;
        // The store cannot keep the next change yet (the ticket, or the
        // final status): the stream ends UNAVAILABLE and the order carries
        // on, to be followed again with WatchOrder.
        let update = match update {
            Ok(update) => update,
            Err(unwritable) => {
                buzzer.follower = None;
                return Some((Err(unwritable.into()), buzzer));
            }
        };
        // `None`: the order has ended and its last change was sent, so the
        // stream ends with status OK; or the closing café kept the order,
        // still open, for its restart, and the customer is told so.
        let Some(update) = update else {
            let entry = follower.entry();
            let kept =
                (!entry.status().is_final()).then(|| CafeError::KeptForRestart(entry.id().clone()));
            buzzer.follower = None;
            return kept.map(|kept| (Err(kept.into()), buzzer));
        };
        let mut event = buzzer.span.in_scope(|| {
            buzzer.phases.observe(&update.order, update.queue_position);
            Span::current().add_event(
                "buzz",
                vec![
                    KeyValue::new("order.status", update.order.status.as_str()),
                    KeyValue::new("queue.position", i64::from(update.queue_position)),
                ],
            );
            event(&update)
        });
        event.claim_token = buzzer.ticket_token.take().unwrap_or_default();
        Some((Ok(event), buzzer))
    }))
}
