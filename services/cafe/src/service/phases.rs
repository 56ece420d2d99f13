//! The phases of an order as one customer sees them, as spans: `queue.wait`
//! from QUEUED until BREWING is seen, then `brewing` until the order ends.
//!
//! A span is created when a status is first seen and ended (dropped) when
//! the next one is. A span that is held but never entered measures
//! wall-clock waiting, which is the point: these bars are time spent
//! waiting, not working.
//!
//! Never entered, they hold no log line either, so they are for traces
//! only ([`TRACE_ONLY`]): with nothing exported they are not made at all
//! (made for the console, they cost every counter order for nothing anyone
//! could see: docs/performance.md).

use cafe_domain::order::{Order, OrderStatus};
use grpc_telemetry::TRACE_ONLY;
use opentelemetry::{KeyValue, trace::TraceContextExt as _};
use tracing::{Span, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The phase an order is in, as a span.
#[derive(Default)]
pub(super) struct Phases {
    current: Option<(OrderStatus, Span)>,
}

impl Phases {
    /// Notes the order's status; opens `queue.wait` on QUEUED and `brewing`
    /// on BREWING (noting the barista on the span the customer waits in),
    /// and closes the previous phase.
    pub(super) fn observe(&mut self, order: &Order, queue_position: u32) {
        if let Some((status, _)) = &self.current
            && *status == order.status
        {
            return; // a queue position change: same phase
        }
        // Dropping the previous phase's span ends its bar here.
        self.current = None;
        let span = match order.status {
            OrderStatus::Queued => info_span!(
                target: TRACE_ONLY,
                "queue.wait",
                order.id = %order.id,
                queue.position = queue_position,
            ),
            OrderStatus::Brewing => {
                let barista = order.barista.as_deref().unwrap_or_default();
                note_barista(barista);
                info_span!(
                    target: TRACE_ONLY,
                    "brewing",
                    order.id = %order.id,
                    order.drink = order.drink.id,
                    order.size = %order.size,
                    barista,
                )
            }
            _ => return,
        };
        self.current = Some((order.status, span));
    }
}

/// Notes who brews the order on the span the customer waits in, the
/// current one: the buzzer's (a field of its own, which logs show too), or
/// at the counter the call's server span, whose fields are the RPC's, so
/// the barista goes onto its OpenTelemetry span (exported only).
fn note_barista(barista: &str) {
    let current = Span::current();
    if current.field("barista").is_some() {
        current.record("barista", barista);
    } else {
        let context = current.context();
        if context.span().is_recording() {
            context
                .span()
                .set_attribute(KeyValue::new("barista", barista.to_owned()));
        }
    }
}
