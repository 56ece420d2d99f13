//! The floor: the café's contract served by doing nothing but the brew.
//!
//! `OrderCoffee` checks the drink against the menu, waits for a barista if
//! `--baristas` limits them (a semaphore: the least a café with N baristas
//! must do to honour Little's law), sleeps the brew time (the menu's, times
//! the size, times `--time-scale`, exactly as the café computes it) and
//! answers READY. `OrderWithBuzzer` sends the ticket (QUEUED), BREWING once
//! a barista is free, and READY after the brew. `GetMenu` answers the menu.
//! The other calls are UNIMPLEMENTED: there is no order book to ask.
//!
//! The buzzer's stream is a [`futures::stream::unfold`] state machine, not
//! a spawned task feeding a channel: nothing per order but the stream
//! itself, which is what a floor should cost.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cafe_domain::{
    convert::{menu_to_wire, size_from_wire},
    menu::{self, MENU, Size, TimeScale},
    proto::v1::{
        self as pb, CancelOrderRequest, GetMenuRequest, GetMenuResponse, GetOrderRequest,
        OrderCoffeeResponse, OrderEvent, OrderRequest, WatchBoardRequest, WatchOrderRequest,
    },
};
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

use crate::proto::cafe_server::Cafe;

/// The floor's `cafe.v1.Cafe`.
#[derive(Debug, Clone)]
pub struct FloorCafe {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    time_scale: TimeScale,
    /// One permit per barista; `None`: as many baristas as customers.
    baristas: Option<Arc<Semaphore>>,
    /// Order numbers, for ids.
    next_id: AtomicU64,
}

impl FloorCafe {
    /// A floor brewing at `time_scale`, with `baristas` baristas (`None`:
    /// no limit, every order brews at once).
    pub fn new(time_scale: TimeScale, baristas: Option<usize>) -> Self {
        FloorCafe {
            inner: Arc::new(Inner {
                time_scale,
                baristas: baristas.map(|n| Arc::new(Semaphore::new(n))),
                next_id: AtomicU64::new(1),
            }),
        }
    }
}

/// A checked order: how long it brews, and its wire form so far.
struct Ticket {
    brew_time: Duration,
    order: pb::Order,
}

impl Inner {
    fn take(&self, request: OrderRequest) -> Result<Ticket, Status> {
        let drink = menu::find(&request.drink).ok_or_else(|| {
            Status::invalid_argument(format!(
                "drink {:?} is not on the menu: choose one of {}",
                request.drink,
                menu::ids()
            ))
        })?;
        let size = size_from_wire(request.size)
            .map_err(|violation| Status::invalid_argument(violation.description))?
            .unwrap_or(Size::Medium);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket {
            brew_time: drink.brew_time_for(size, self.time_scale),
            order: pb::Order {
                id: format!("ord-{id}"),
                customer: request.customer,
                drink: request.drink,
                size: pb::Size::from(size) as i32,
                status: pb::OrderStatus::Queued as i32,
                ..pb::Order::default()
            },
        })
    }

    /// Waits for a free barista (at once without a limit). The permit is
    /// the barista: held for the brew, given back when dropped.
    async fn barista(&self) -> Option<OwnedSemaphorePermit> {
        match &self.baristas {
            Some(baristas) => Arc::clone(baristas).acquire_owned().await.ok(),
            None => None,
        }
    }
}

/// Where a buzzer's stream is.
enum Step {
    Ticket,
    WaitForBarista,
    Brewing(Option<OwnedSemaphorePermit>),
    Done,
}

fn event(order: &pb::Order, status: pb::OrderStatus) -> OrderEvent {
    OrderEvent {
        order: Some(pb::Order {
            status: status as i32,
            ..order.clone()
        }),
        // The floor keeps no line, so it has no place in it to tell.
        queue_position: 0,
        claim_token: String::new(),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<OrderEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Cafe for FloorCafe {
    async fn get_menu(
        &self,
        _request: Request<GetMenuRequest>,
    ) -> Result<Response<GetMenuResponse>, Status> {
        Ok(Response::new(menu_to_wire(MENU, self.inner.time_scale)))
    }

    async fn order_coffee(
        &self,
        request: Request<OrderRequest>,
    ) -> Result<Response<OrderCoffeeResponse>, Status> {
        let mut ticket = self.inner.take(request.into_inner())?;
        let barista = self.inner.barista().await;
        tokio::time::sleep(ticket.brew_time).await;
        drop(barista);
        ticket.order.status = pb::OrderStatus::Ready as i32;
        Ok(Response::new(OrderCoffeeResponse {
            order: Some(ticket.order),
            claim_token: String::new(),
        }))
    }

    type OrderWithBuzzerStream = EventStream;

    async fn order_with_buzzer(
        &self,
        request: Request<OrderRequest>,
    ) -> Result<Response<Self::OrderWithBuzzerStream>, Status> {
        let ticket = self.inner.take(request.into_inner())?;
        // Each step yields one event and says what comes next; the order
        // travels in the state. tonic polls the stream as the connection
        // takes the events, and dropping it (the customer left) drops the
        // barista's permit with it.
        let start = (Step::Ticket, ticket, Arc::clone(&self.inner));
        let events = futures::stream::unfold(start, |(step, ticket, inner)| async move {
            let (status, next) = match step {
                Step::Ticket => (pb::OrderStatus::Queued, Step::WaitForBarista),
                Step::WaitForBarista => (
                    pb::OrderStatus::Brewing,
                    Step::Brewing(inner.barista().await),
                ),
                Step::Brewing(permit) => {
                    tokio::time::sleep(ticket.brew_time).await;
                    drop(permit);
                    (pb::OrderStatus::Ready, Step::Done)
                }
                Step::Done => return None,
            };
            let event = event(&ticket.order, status);
            Some((Ok(event), (next, ticket, inner)))
        });
        Ok(Response::new(Box::pin(events)))
    }

    type WatchOrderStream = EventStream;

    async fn watch_order(
        &self,
        _request: Request<WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        Err(Status::unimplemented("the floor keeps no orders"))
    }

    async fn get_order(
        &self,
        _request: Request<GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        Err(Status::unimplemented("the floor keeps no orders"))
    }

    async fn cancel_order(
        &self,
        _request: Request<CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        Err(Status::unimplemented("the floor keeps no orders"))
    }

    type WatchBoardStream = EventStream;

    async fn watch_board(
        &self,
        _request: Request<WatchBoardRequest>,
    ) -> Result<Response<Self::WatchBoardStream>, Status> {
        Err(Status::unimplemented("the floor keeps no board"))
    }

    async fn get_stats(
        &self,
        _request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        Err(Status::unimplemented("the floor keeps no orders to count"))
    }
}
