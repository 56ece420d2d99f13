//! The phases of an order as one customer sees them, as spans: `queue.wait`
//! from QUEUED until BREWING is seen, then `brewing` until the order ends.
//!
//! A span is created when a status is first seen and ended (dropped) when
//! the next one is. A span that is held but never entered measures
//! wall-clock waiting, which is the point: these bars are time spent
//! waiting, not working.
//!
//! Never entered, they hold no log line either, so they are for traces
//! only ([`TRACE_ONLY`]): with nothing exported they are not made at all.
//! (Made for the console, the two cost a counter order 14k of its 161k
//! instructions, for nothing anyone could see.)

use cafe_domain::order::{Order, OrderStatus};
use grpc_telemetry::TRACE_ONLY;
use tracing::{Span, info_span};

/// The phase an order is in, as a span.
#[derive(Default)]
pub(super) struct Phases {
    current: Option<(OrderStatus, Span)>,
}

impl Phases {
    /// Notes the order's status; opens `queue.wait` on QUEUED and `brewing`
    /// on BREWING (recording the barista on the current span), and closes
    /// the previous phase.
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
                Span::current().record("barista", barista);
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
