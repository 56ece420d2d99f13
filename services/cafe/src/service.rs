//! The `cafe.v1.Cafe` gRPC service: the thin layer that turns requests into
//! calls on the [`OrderBook`] and the book's news into responses.
//!
//! The two ways of waiting are side by side here:
//! - [`order_coffee`](CafeService::order_coffee) awaits the finished order
//!   and only then returns: the customer stands at the counter. The await
//!   parks this request's task (no thread is held), but the *caller* waits.
//! - [`order_with_buzzer`](CafeService::order_with_buzzer) returns a stream
//!   at once; a spawned task forwards the order's changes into it. The caller
//!   has the ticket straight away and is free to do other things.
//!
//! Both are traced so that waiting shows as bars in a trace view. Under the
//! handler's span (itself under the `grpc.server` span opened by
//! [`cafe_core::propagation`]) an order gets a `queue.wait` span, from placement
//! until BREWING is observed, then a `brewing` span until the order ends.
//! With few baristas and many orders, the `queue.wait` bars grow: that is
//! contention, visible. A buzzer's task runs in a `buzzer` span that lives as
//! long as the stream, with one span event per change it sends.

use std::{pin::Pin, sync::Arc};

use cafe_core::{
    convert::menu_to_wire,
    deadline::CallerDeadline,
    menu::{MENU, TimeScale},
    order::{NewOrder, Order, OrderStatus},
    proto::v1::{self as pb, cafe_server::Cafe},
};
use futures::Stream;
use opentelemetry::KeyValue;
use tokio::{
    sync::{broadcast, mpsc},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument, Span, field::Empty, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    book::{OrderBook, OrderEntry, OrderUpdate},
    error::CafeError,
};

/// What the customer is told when the café cancels an order because it
/// closes before a barista got to it.
pub const CLOSING_NOTE: &str = "the café closed before a barista got to this order";

/// How many events a stream may buffer for a slow client before the
/// producing task waits for it.
const STREAM_BUFFER: usize = 16;

/// A stream of order events, as the streaming RPCs return them.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::OrderEvent, Status>> + Send>>;

/// The café's gRPC face.
#[derive(Debug, Clone)]
pub struct CafeService {
    book: Arc<OrderBook>,
    time_scale: TimeScale,
}

impl CafeService {
    /// A service taking orders into `book`; `time_scale` is reported with the
    /// menu.
    pub fn new(book: Arc<OrderBook>, time_scale: TimeScale) -> Self {
        CafeService { book, time_scale }
    }

    /// Places an order for a customer who waits until `deadline` at most,
    /// and records what it is on the handler's span.
    fn place(
        &self,
        request: &pb::OrderRequest,
        deadline: Option<Instant>,
    ) -> Result<crate::book::Placed, Status> {
        let new = NewOrder::try_from(request).map_err(CafeError::InvalidRequest)?;
        let placed = self.book.place_until(new, deadline)?;
        let order = placed.entry.snapshot();
        let span = Span::current();
        span.record("order.id", order.id.as_str());
        span.record("order.size", order.size.to_string());
        span.record("queue.position", placed.entry.update().queue_position);
        if placed.is_new {
            info!(order.id = %order.id, customer = %order.customer, drink = order.drink.id,
                  size = %order.size, queue_position = placed.entry.update().queue_position, "order placed");
        } else {
            info!(order.id = %order.id, "repeated request_id: returning the order placed earlier");
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

    #[tracing::instrument(skip_all, fields(
        customer = %request.get_ref().customer,
        order.drink = %request.get_ref().drink,
        order.id = Empty,
        order.size = Empty,
        queue.position = Empty,
        barista = Empty,
    ))]
    async fn order_coffee(
        &self,
        request: Request<pb::OrderRequest>,
    ) -> Result<Response<pb::OrderCoffeeResponse>, Status> {
        // The customer's deadline travels with the order to the barista
        // (the `DeadlineLayer` in startup also ends this call with
        // DEADLINE_EXCEEDED when it passes, which cancels the order below).
        let placed = self.place(request.get_ref(), CallerDeadline::of(&request))?;
        let entry = placed.entry;

        // If the customer walks away (their deadline passes, or they cancel
        // the call), tonic drops this future mid-await, and with it this
        // guard: the order is cancelled instead of being brewed for nobody.
        // A buzzer customer, by contrast, can come back with WatchOrder, so
        // their order carries on.
        // (Only the first caller's guard: a retry with the same request_id
        // that gives up must not cancel the order for the first.)
        let leaving = placed.is_new.then(|| LeaveCounterGuard {
            book: &self.book,
            entry: &entry,
        });

        // Waiting at the counter: this await is the whole synchronous café.
        let order = wait_at_counter(&entry).await;
        // The order has ended, so the guard has nothing left to cancel.
        drop(leaving);

        match order.status {
            OrderStatus::Ready => Ok(Response::new(pb::OrderCoffeeResponse {
                order: Some((&order).into()),
                claim_token: entry.claim_token().to_owned(),
            })),
            OrderStatus::Cancelled if self.book.is_closed() => Err(Status::unavailable(format!(
                "order {} was cancelled: {}",
                order.id,
                order.note.as_deref().unwrap_or(CLOSING_NOTE)
            ))),
            OrderStatus::Cancelled => Err(Status::cancelled(format!(
                "order {} was cancelled: {}",
                order.id,
                order.note.as_deref().unwrap_or("cancelled")
            ))),
            _ => Err(Status::unavailable(format!(
                "order {} could not be made: {}",
                order.id,
                order.note.as_deref().unwrap_or("no reason given")
            ))),
        }
    }

    type OrderWithBuzzerStream = EventStream;

    #[tracing::instrument(skip_all, fields(
        customer = %request.get_ref().customer,
        order.drink = %request.get_ref().drink,
        order.id = Empty,
        order.size = Empty,
        queue.position = Empty,
        barista = Empty,
    ))]
    async fn order_with_buzzer(
        &self,
        request: Request<pb::OrderRequest>,
    ) -> Result<Response<EventStream>, Status> {
        // A buzzer customer's deadline only bounds getting the ticket: the
        // order goes on, and they can come back with WatchOrder.
        let placed = self.place(request.get_ref(), None)?;
        let ticket_token = placed.entry.claim_token().to_owned();
        // A new order's buzzer replays its life from the start, so the first
        // event is the QUEUED ticket even if a barista has already taken it.
        // A repeated request picks up from where the order is now.
        let from = if placed.is_new {
            Replay::FromPlacement
        } else {
            Replay::FromNow
        };
        Ok(Response::new(order_events(
            placed.entry,
            Some(ticket_token),
            from,
        )))
    }

    type WatchOrderStream = EventStream;

    #[tracing::instrument(skip_all, fields(order.id = %request.get_ref().order_id))]
    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let entry = self.book.get(&request.get_ref().order_id)?;
        Ok(Response::new(order_events(entry, None, Replay::FromNow)))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let entry = self.book.get(&request.get_ref().order_id)?;
        Ok(Response::new((&entry.snapshot()).into()))
    }

    #[tracing::instrument(skip_all, fields(order.id = %request.get_ref().order_id))]
    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let pb::CancelOrderRequest {
            order_id,
            claim_token,
        } = request.get_ref();
        let order = self
            .book
            .cancel(order_id, claim_token, "cancelled by the customer")?;
        info!("order cancelled");
        Ok(Response::new((&order).into()))
    }

    type WatchBoardStream = EventStream;

    async fn watch_board(
        &self,
        _request: Request<pb::WatchBoardRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let (open, mut updates) = self.book.watch_board();
        let book = Arc::clone(&self.book);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);

        // The producer runs in its own task and writes into a channel; the
        // response stream is the channel's other end. When the client hangs
        // up, tonic drops the receiver, `tx.closed()` fires and the task
        // ends: no orphaned work.
        let producer = async move {
            for update in open {
                if tx.send(Ok(board_event(update))).await.is_err() {
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
                            if tx.send(Ok(board_event(update))).await.is_err() {
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
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_stats(
        &self,
        _request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        Ok(Response::new(stats(&self.book)))
    }
}

/// What `GetStats` answers: the book's counts, and the metrics of the tokio
/// runtime this handler runs on (the café's own). Only stable metrics are
/// read, so no `--cfg tokio_unstable` is needed. The counts come from the
/// board's snapshot of open orders, taken under one lock, so the two agree.
fn stats(book: &OrderBook) -> pb::GetStatsResponse {
    let (open, _updates) = book.watch_board();
    let count = |status: OrderStatus| {
        let orders = open.iter().filter(|u| u.order.status == status).count();
        u32::try_from(orders).unwrap_or(u32::MAX)
    };
    let runtime = tokio::runtime::Handle::current().metrics();
    pb::GetStatsResponse {
        orders_queued: count(OrderStatus::Queued),
        orders_brewing: count(OrderStatus::Brewing),
        runtime_workers: u32::try_from(runtime.num_workers()).unwrap_or(u32::MAX),
        runtime_alive_tasks: runtime.num_alive_tasks() as u64,
        runtime_global_queue_depth: runtime.global_queue_depth() as u64,
    }
}

/// Cancels a counter order if its customer leaves before it is ready.
/// Once the order has ended, dropping it does nothing: a final order stays
/// final.
struct LeaveCounterGuard<'a> {
    book: &'a OrderBook,
    entry: &'a OrderEntry,
}

impl Drop for LeaveCounterGuard<'_> {
    fn drop(&mut self) {
        if self.book.abandon(
            self.entry,
            "the customer left the counter before the drink was ready",
        ) {
            info!(order.id = %self.entry.id(), "customer left: order cancelled");
        }
    }
}

fn board_event(update: OrderUpdate) -> pb::OrderEvent {
    pb::OrderEvent {
        order: Some((&update.order).into()),
        queue_position: update.queue_position,
        claim_token: String::new(),
    }
}

/// Where a buzzer starts in an order's life.
#[derive(Debug, Clone, Copy)]
enum Replay {
    /// Every change since the order was placed.
    FromPlacement,
    /// The order as it is now, then every change.
    FromNow,
}

/// The buzzer: changes to one order, as a stream that ends OK once the
/// order has ended. The first event carries `ticket_token` if given.
///
/// The producing task runs in a `buzzer` span, child of the call's span, that
/// ends with the stream; each event sent is a span event on it, and the
/// order's `queue.wait` and `brewing` phases are spans under it.
fn order_events(entry: Arc<OrderEntry>, ticket_token: Option<String>, from: Replay) -> EventStream {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let buzzer = info_span!("buzzer", order.id = %entry.id(), barista = Empty);
    let task = async move {
        let mut state = entry.subscribe();
        let mut phases = Phases::default();
        let mut ticket_token = ticket_token;
        // How much of the order's history this buzzer has shown, and the
        // last queue position it showed.
        let mut shown = match from {
            Replay::FromPlacement => 0,
            Replay::FromNow => state.borrow().history.len() - 1,
        };
        let mut shown_position = None;
        loop {
            // Collect what is new while holding the watch's read lock, and
            // send after releasing it: never hold a borrow across `.await`.
            let (events, finished) = {
                let now = state.borrow_and_update();
                let mut events = Vec::new();
                let mut push = |update: &OrderUpdate| {
                    phases.observe(&update.order, update.queue_position);
                    Span::current().add_event(
                        "buzz",
                        vec![
                            KeyValue::new("order.status", update.order.status.to_string()),
                            KeyValue::new("queue.position", i64::from(update.queue_position)),
                        ],
                    );
                    events.push(pb::OrderEvent {
                        order: Some((&update.order).into()),
                        queue_position: update.queue_position,
                        claim_token: ticket_token.take().unwrap_or_default(),
                    });
                    Some(update.queue_position)
                };
                for change in &now.history[shown..] {
                    shown_position = push(change);
                }
                shown = now.history.len();
                // Still in line, and moved up since the buzzer last said?
                let current = now.current();
                if current.status == OrderStatus::Queued
                    && shown_position != Some(now.queue_position)
                {
                    shown_position = push(&OrderUpdate {
                        order: current.clone(),
                        queue_position: now.queue_position,
                    });
                }
                (events, current.status.is_final())
            };
            for event in events {
                if tx.send(Ok(event)).await.is_err() {
                    return; // the customer hung up
                }
            }
            if finished {
                return; // dropping `tx` ends the stream with status OK
            }
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    };
    // The span goes with the task: whichever way the task ends (order
    // finished, customer hung up), the span ends with it.
    tokio::spawn(task.instrument(buzzer));
    Box::pin(ReceiverStream::new(rx))
}

/// Waits at the counter until the order ends and returns it, tracing the
/// wait as phases under the handler's span.
async fn wait_at_counter(entry: &OrderEntry) -> Order {
    let mut state = entry.subscribe();
    let mut phases = Phases::default();
    let mut seen = 0;
    loop {
        // Look at what happened while holding the watch's read lock; wait
        // for the next change after releasing it.
        let finished = {
            let now = state.borrow_and_update();
            for change in &now.history[seen..] {
                phases.observe(&change.order, change.queue_position);
            }
            seen = now.history.len();
            let current = now.current();
            current.status.is_final().then(|| current.clone())
        };
        if let Some(order) = finished {
            return order;
        }
        if state.changed().await.is_err() {
            // Cannot happen while we hold the entry (it owns the sender);
            // if it did, the order as it stands is the best answer.
            return entry.snapshot();
        }
    }
}

/// The phases of an order as one customer sees them, as spans: created
/// when a status is first seen, ended (dropped) when the next one is. A span
/// that is held but never entered measures wall-clock waiting, which is the
/// point: these bars are time spent waiting, not working.
#[derive(Default)]
struct Phases {
    current: Option<(OrderStatus, Span)>,
}

impl Phases {
    /// Notes the order's status; opens `queue.wait` on QUEUED and `brewing`
    /// on BREWING (recording the barista on the current span), and closes
    /// the previous phase.
    fn observe(&mut self, order: &Order, queue_position: u32) {
        if let Some((status, _)) = &self.current
            && *status == order.status
        {
            return; // a queue position change: same phase
        }
        // Dropping the previous phase's span ends its bar here.
        self.current = None;
        let span = match order.status {
            OrderStatus::Queued => info_span!(
                "queue.wait",
                order.id = %order.id,
                queue.position = queue_position,
            ),
            OrderStatus::Brewing => {
                let barista = order.barista.as_deref().unwrap_or_default();
                Span::current().record("barista", barista);
                info_span!(
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
