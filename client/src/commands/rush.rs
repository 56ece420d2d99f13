//! `cafe rush`: a crowd orders at the counter, and the timeline shows what
//! the way they wait costs. [`one_after_another`] is the synchronous café
//! from the customer's side, [`all_at_once`] the asynchronous one, side by
//! side: both send the very same unary `OrderCoffee` call on the very same
//! connection; only when the client awaits differs. That is the lesson.
//!
//! The trace tells it too: each run is a span (`sequential`, `concurrent`)
//! and each customer a `customer` span over everything done for their
//! order, a staircase and a fan in Jaeger (`docs/tracing.md`). The module
//! `report` holds what a run measured, `print` shows it.

mod print;
mod report;

use std::{future::Future, pin::Pin, time::SystemTime};

use cafe_domain::{
    convert::time_from_wire,
    menu::Size,
    proto::v1::{self as pb, OrderRequest},
};
use futures::{Stream, StreamExt, stream};
use grpc_telemetry::propagation;
use tokio::time::Instant;
use tracing::{Instrument, field::Empty, info_span};

pub use self::{
    print::{run, run_plan, title, write_svg},
    report::{Report, Served, Visit, speedup, totals},
};
use crate::{connection::Cafe, error::ClientError, view::stage_times};

/// Who orders what.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How many customers.
    pub customers: usize,
    /// The drink's menu id.
    pub drink: String,
    /// The cup size.
    pub size: Size,
}

/// How the customers wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One after another.
    Sequential,
    /// Up to `in_flight` at once.
    Concurrent {
        /// The most orders in flight at once.
        in_flight: usize,
    },
}

impl Pace {
    /// `sequential` or `concurrent`.
    pub fn name(self) -> &'static str {
        match self {
            Pace::Sequential => "sequential",
            Pace::Concurrent { .. } => "concurrent",
        }
    }
}

/// The synchronous café, from the customer's side. `then` runs one visit to
/// completion before it starts the next: customer #2 stands behind #1 until
/// #1 has their drink, so the run takes the *sum* of the waits, however many
/// baristas stand idle.
pub fn one_after_another<'a, Visiting: Future<Output = Visit> + 'a>(
    customers: usize,
    visit: impl FnMut(usize) -> Visiting + 'a,
) -> impl Stream<Item = Visit> + 'a {
    stream::iter(1..=customers).then(visit)
}

/// The asynchronous café, from the customer's side. `buffer_unordered`
/// keeps up to `in_flight` visits going at once and yields each as soon as
/// it ends, in any order: every customer has ordered and is free while the
/// drinks brew, so the run takes about the *longest* wait.
pub fn all_at_once<'a, Visiting: Future<Output = Visit> + 'a>(
    customers: usize,
    in_flight: usize,
    visit: impl FnMut(usize) -> Visiting + 'a,
) -> impl Stream<Item = Visit> + 'a {
    stream::iter(1..=customers)
        .map(visit)
        .buffer_unordered(in_flight.max(1))
}

/// Runs one rush against `cafe` and returns what happened. Each customer's
/// visit is a `customer` span, child of the current span. Stops early,
/// with `interrupted` set, when `interrupt` resolves. `progress` is called
/// with (done, planned) after each answer.
pub async fn rush(
    cafe: &Cafe,
    url: &str,
    plan: &Plan,
    pace: Pace,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    mut progress: impl FnMut(usize, usize),
) -> Report {
    let width = plan.customers.to_string().len();
    let start = Instant::now();
    let started_at = SystemTime::now();
    // Each customer gets a clone of the client: a clone is another handle
    // onto the SAME HTTP/2 connection, not a new socket. HTTP/2 multiplexes:
    // every call is its own stream (a numbered exchange of frames) on that
    // connection, so a hundred calls waiting at once are a hundred stream
    // ids on one socket, not a hundred sockets or threads.
    let visit = |customer: usize| {
        let request = OrderRequest {
            customer: format!("customer-{customer:0width$}"),
            drink: plan.drink.clone(),
            size: pb::Size::from(plan.size) as i32,
            request_id: String::new(),
        };
        customer_visit(cafe.clone(), request, customer, start, url)
    };
    let mut visits: Pin<Box<dyn Stream<Item = Visit> + '_>> = match pace {
        Pace::Sequential => Box::pin(one_after_another(plan.customers, visit)),
        Pace::Concurrent { in_flight } => Box::pin(all_at_once(plan.customers, in_flight, visit)),
    };

    let mut done = Vec::with_capacity(plan.customers);
    let mut interrupted = false;
    loop {
        tokio::select! {
            // Check Ctrl-C first, so a flood of answers cannot starve it.
            biased;
            () = &mut *interrupt => {
                interrupted = true;
                break;
            }
            next = visits.next() => match next {
                Some(visit) => {
                    done.push(visit);
                    progress(done.len(), plan.customers);
                }
                None => break,
            },
        }
    }
    // Dropping the stream drops every call still in flight: each resets its
    // HTTP/2 stream, and the café cancels those orders (a customer who
    // leaves the counter is not brewed for).
    drop(visits);
    Report {
        pace,
        planned: plan.customers,
        started_at,
        wall: start.elapsed(),
        visits: done,
        interrupted,
    }
}

/// One customer: send the order, wait for the drink. Its body runs at the
/// first poll, which is when the customer steps up: the `customer` span
/// starts when the order is sent, so its bar in a trace is the customer's
/// wait. Its parent is the run's span, current while the run polls it.
async fn customer_visit(
    mut cafe: Cafe,
    request: OrderRequest,
    customer: usize,
    start: Instant,
    url: &str,
) -> Visit {
    let span = info_span!(
        "customer",
        otel.name = %format!("customer #{customer}"),
        customer,
        order.id = Empty,
        otel.status_code = Empty,
    );
    let visiting = async {
        let sent = start.elapsed();
        let result = cafe.order_coffee(request).await;
        let received = start.elapsed();
        let trace_id = match &result {
            Ok(response) => propagation::trace_id_from(response.metadata()),
            Err(status) => propagation::trace_id_from(status.metadata()),
        };
        let outcome = result
            .map(|response| {
                let order = response.into_inner().order.unwrap_or_default();
                let (waiting, brewing) = stage_times(&order);
                let started = time_from_wire(order.started_at.as_ref());
                let ready = time_from_wire(order.ready_at.as_ref());
                Served {
                    order_id: order.id,
                    barista: order.barista,
                    waiting: waiting.unwrap_or_default(),
                    brewing: brewing.unwrap_or_default(),
                    brewed: started.zip(ready),
                    placed: time_from_wire(order.placed_at.as_ref()),
                }
            })
            .map_err(|status| ClientError::from_status(status, url, None));
        Visit {
            customer,
            sent,
            received,
            outcome,
            trace_id,
        }
    };
    let visit = visiting.instrument(span.clone()).await;
    match &visit.outcome {
        Ok(served) => span.record("order.id", served.order_id.as_str()),
        Err(_) => span.record("otel.status_code", "error"),
    };
    visit
}
