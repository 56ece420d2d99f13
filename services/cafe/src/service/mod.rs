//! The `cafe.v1.Cafe` gRPC service: the thin layer that turns requests into
//! calls on the café's [`Orders`] and the book's news into responses.
//!
//! # Layout
//! - this module: the handlers, one per RPC, each a few lines.
//! - `counter.rs`: `OrderCoffee`, waiting at the counter. The handler awaits
//!   the finished order and only then returns: the customer stands there.
//!   The await parks this request's task (no thread is held), but the
//!   *caller* waits.
//! - `buzzer.rs`: `OrderWithBuzzer` and `WatchOrder` return a stream at
//!   once; the stream itself follows the order, one change per event. The
//!   caller has the ticket straight away and is free to do other things.
//! - `board.rs`: `WatchBoard`, every order's changes as they happen.
//! - `phases.rs`: the spans that show an order's waiting in a trace.
//!
//! The counter and the buzzer follow an order with the same
//! [`Follower`](crate::book::Follower); they differ in what they do with
//! each change (wait for the last one, or send every one) and in whether
//! they show the line moving (the buzzer does).
//!
//! Both are traced so that waiting shows as bars in a trace view. A handler
//! runs in its call's server span, opened by [`grpc_telemetry::propagation`]
//! (no span of its own: it would cover the same time), and writes what it
//! learns of the order onto it (`order.id`, `customer`…). Under that span
//! an order gets a `queue.wait` span, from placement until BREWING is
//! observed, then a `brewing` span until the order ends. With few baristas and many orders, the `queue.wait` bars
//! grow: that is contention, visible. A buzzer's task runs in a `buzzer`
//! span that lives as long as the stream, with one span event per change
//! it sends.

mod board;
mod buzzer;
mod counter;
mod phases;

use std::{pin::Pin, sync::Arc, time::Duration};

use cafe_domain::{
    convert::menu_to_wire,
    menu::{MENU, TimeScale},
    order::NewOrder,
    proto::v1::{self as pb, cafe_server::Cafe},
};
use futures::Stream;
use grpc_serving::deadline::CallerDeadline;
use grpc_telemetry::propagation;
use opentelemetry::{Context, KeyValue, trace::TraceContextExt as _};
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tracing::{Span, debug, info};

use crate::{
    Config,
    book::{OrderBook, Origin, Placed, Replay},
    error::CafeError,
    store::Orders,
};

pub use counter::CLOSING_NOTE;

/// How many events the board's stream may buffer for a slow watcher
/// before its producing task waits for it.
const STREAM_BUFFER: usize = 16;

/// A stream of order events, as the streaming RPCs return them.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::OrderEvent, Status>> + Send>>;

/// The café's gRPC face.
#[derive(Debug, Clone)]
pub struct CafeService {
    orders: Orders,
    time_scale: TimeScale,
    /// `--max-counter-wait`.
    max_counter_wait: Duration,
}

impl CafeService {
    /// A service taking `orders`; `time_scale` is reported with the menu.
    pub fn new(orders: Orders, time_scale: TimeScale) -> Self {
        CafeService {
            orders,
            time_scale,
            max_counter_wait: Config::default().max_counter_wait,
        }
    }

    /// The same service, with counter calls ended after `wait`
    /// (`--max-counter-wait`).
    pub fn with_max_counter_wait(self, wait: Duration) -> Self {
        CafeService {
            max_counter_wait: wait,
            ..self
        }
    }

    /// Places an order for a customer who waits until `deadline` at most,
    /// and records what it is on the call's span, whose trace context is
    /// `call`. The order keeps that trace: its brew's spans will be children
    /// of the call's.
    async fn place(
        &self,
        request: &pb::OrderRequest,
        deadline: Option<Instant>,
        call: Context,
    ) -> Result<Placed, CafeError> {
        // Said first, so that a refused order's span says who asked for
        // what. Only onto a span that records: without export there is none.
        let recording = call.span().is_recording();
        if recording {
            call.span().set_attributes([
                KeyValue::new("customer", request.customer.clone()),
                KeyValue::new("order.drink", request.drink.clone()),
            ]);
        }
        let new = NewOrder::try_from(request).map_err(CafeError::InvalidRequest)?;
        let origin = Origin {
            deadline,
            // Only names the span: the order may outlive it (see `Origin`).
            trace: call.clone(),
        };
        let placed = self.orders.place(new, origin).await?;
        let entry = &placed.entry;
        let request = entry.request();
        // On this call's span, even for a repeated request (whose order
        // keeps the first call's trace).
        if recording {
            call.span().set_attributes([
                KeyValue::new("order.id", entry.id().as_str().to_owned()),
                KeyValue::new("order.size", request.size.as_str()),
                KeyValue::new("queue.position", i64::from(placed.queue_position)),
            ]);
        }
        if placed.is_new {
            // `debug`, as every step of an order's usual life: one `info`
            // line per step cost a large share of the café's CPU (see
            // docs/cafe-server.md, "Logs").
            debug!(order.id = %entry.id(), customer = %request.customer, drink = request.drink.id,
                   size = %request.size, queue_position = placed.queue_position, "order placed");
        } else {
            info!(order.id = %entry.id(), "repeated request_id: returning the order placed earlier");
        }
        Ok(placed)
    }
}

#[tonic::async_trait]
impl Cafe for CafeService {
    async fn get_menu(
        &self,
        _request: Request<pb::GetMenuRequest>,
    ) -> Result<Response<pb::GetMenuResponse>, Status> {
        Ok(Response::new(menu_to_wire(MENU, self.time_scale)))
    }

    async fn order_coffee(
        &self,
        request: Request<pb::OrderRequest>,
    ) -> Result<Response<pb::OrderCoffeeResponse>, Status> {
        // The customer's deadline travels with the order to the barista
        // (the `DeadlineLayer` in startup also ends this call with
        // DEADLINE_EXCEEDED when it passes, which cancels the order below).
        let placed = self
            .place(
                request.get_ref(),
                CallerDeadline::of(&request),
                call_context(),
            )
            .await?;
        let claim_token = placed.entry.claim_token().to_string();
        // The café's own bound on the wait. Past it the wait is dropped, and
        // with it the guard that cancels the order (see `counter`).
        let waiting = counter::wait(&self.orders, placed);
        let order = tokio::time::timeout(self.max_counter_wait, waiting)
            .await
            .map_err(|_| CafeError::CounterWaitOver(self.max_counter_wait))??;
        Ok(Response::new(pb::OrderCoffeeResponse {
            order: Some((&order).into()),
            claim_token,
        }))
    }

    type OrderWithBuzzerStream = EventStream;

    async fn order_with_buzzer(
        &self,
        request: Request<pb::OrderRequest>,
    ) -> Result<Response<EventStream>, Status> {
        // A buzzer customer's deadline only bounds getting the ticket: the
        // order goes on, and they can come back with WatchOrder.
        let placed = self.place(request.get_ref(), None, call_context()).await?;
        let ticket_token = placed.entry.claim_token().to_string();
        // A new order's buzzer replays its life from the start, so the first
        // event is the QUEUED ticket even if a barista has already taken it.
        // A repeated request picks up from where the order is now.
        let from = if placed.is_new {
            Replay::FromPlacement
        } else {
            Replay::FromNow
        };
        let follower = self.orders.book().follow(placed.entry, from);
        Ok(Response::new(buzzer::events(follower, Some(ticket_token))))
    }

    type WatchOrderStream = EventStream;

    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<EventStream>, Status> {
        note_order_id(&request.get_ref().order_id);
        let entry = self.orders.find(&request.get_ref().order_id).await?;
        let book = self.orders.book();
        // Kept for the restart of a closing café: come back once it is
        // (answered before the stream starts, so the retry hint goes with it).
        if book.left_for_restart(&entry) {
            return Err(CafeError::KeptForRestart(entry.id().clone()).into());
        }
        let follower = book.follow(entry, Replay::FromNow);
        Ok(Response::new(buzzer::events(follower, None)))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        // Shown as the store has it: never a change before it is kept.
        let order = self.orders.get(&request.get_ref().order_id).await?;
        Ok(Response::new((&order).into()))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let pb::CancelOrderRequest {
            order_id,
            claim_token,
        } = request.get_ref();
        note_order_id(order_id);
        // Answered once the cancel is kept: a cancelled order must not come
        // back after a restart.
        let order = self
            .orders
            .cancel(order_id, claim_token, "cancelled by the customer")
            .await?;
        info!(order.id = %order_id, "order cancelled");
        Ok(Response::new((&order).into()))
    }

    type WatchBoardStream = EventStream;

    async fn watch_board(
        &self,
        _request: Request<pb::WatchBoardRequest>,
    ) -> Result<Response<EventStream>, Status> {
        Ok(Response::new(board::events(Arc::clone(self.orders.book()))))
    }

    async fn get_stats(
        &self,
        _request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        Ok(Response::new(stats(self.orders.book())))
    }
}

/// The trace context of the call being served: its server span's (the
/// span current while a handler runs) when exporting; without export, the
/// caller's, if it sent one.
fn call_context() -> Context {
    propagation::context_of(&Span::current())
}

/// Writes the order a call is about onto the call's span.
fn note_order_id(order_id: &str) {
    let call = call_context();
    if call.span().is_recording() {
        call.span()
            .set_attribute(KeyValue::new("order.id", order_id.to_owned()));
    }
}

/// What `GetStats` answers: the book's counts, and the metrics of the tokio
/// runtime this handler runs on (the café's own). Only stable metrics are
/// read, so no `--cfg tokio_unstable` is needed.
fn stats(book: &OrderBook) -> pb::GetStatsResponse {
    let counts = book.counts();
    let runtime = tokio::runtime::Handle::current().metrics();
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    pb::GetStatsResponse {
        orders_queued: small(counts.queued),
        orders_brewing: small(counts.brewing),
        runtime_workers: small(runtime.num_workers()),
        runtime_alive_tasks: runtime.num_alive_tasks() as u64,
        runtime_global_queue_depth: runtime.global_queue_depth() as u64,
    }
}

/// An update as a buzzer or the board sends it (claim token empty).
fn event(update: &crate::book::Update) -> pb::OrderEvent {
    pb::OrderEvent {
        order: Some((&update.order).into()),
        queue_position: update.queue_position,
        claim_token: String::new(),
    }
}
