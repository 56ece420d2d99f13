//! `cafe rush`: a crowd orders at the counter, and the timeline shows what
//! the way they wait costs.
//!
//! - **sequential** is the synchronous café from the customer's side: each
//!   order is awaited before the next is sent, so the run takes the *sum* of
//!   the waits, however many baristas stand idle.
//! - **concurrent** is the asynchronous café: up to K orders are in flight
//!   at once, so the run takes about the *longest* wait, which the number of
//!   baristas bounds (6 orders, 3 baristas: two rounds of brewing).
//!
//! Both send the very same unary `OrderCoffee` call on the very same
//! connection; only when the client awaits differs. That is the lesson.
//!
//! The trace tells it too. Under the command's root span (`cafe rush`), each
//! run is a span (`sequential`, `concurrent`) and each customer a `customer`
//! span, parent of that customer's `OrderCoffee` call and of everything the
//! café and the barista did for it. In Jaeger a sequential run is a
//! staircase (each customer starts where the one before ended) and a
//! concurrent run a fan (every customer starts at once; those who waited in
//! line have long `queue.wait` bars). `compare` puts both runs in one trace,
//! on one time axis, so the two shapes sit one above the other.

use std::{
    future::Future,
    path::Path,
    pin::Pin,
    time::{Duration, SystemTime},
};

use cafe_domain::{
    convert::time_from_wire,
    menu::Size,
    proto::v1::{self as pb, OrderRequest},
};
use futures::{Stream, StreamExt, stream};
use grpc_telemetry::propagation;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{Instrument, field::Empty, info_span};

use super::{Finished, ctrl_c};
use crate::{
    cli::{RushArgs, RushMode},
    connection::{Cafe, Connection},
    error::ClientError,
    output::{Output, human, millis},
    timeline::{self, Row},
    view::stage_times,
};

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

/// One customer's visit, timed by the customer's own clock from the start
/// of the run, and by the café's clock inside.
#[derive(Debug)]
pub struct Visit {
    /// 1-based customer number, in the order they queued up to send.
    pub customer: usize,
    /// When the order was sent.
    pub sent: Duration,
    /// When the answer came back.
    pub received: Duration,
    /// The served order, or why not.
    pub outcome: Result<Served, ClientError>,
    /// The trace id the café answered with (`x-trace-id`), if any.
    pub trace_id: Option<String>,
}

/// What a served customer got.
#[derive(Debug, Clone)]
pub struct Served {
    /// The order's id.
    pub order_id: String,
    /// Who brewed it.
    pub barista: String,
    /// In line, by the café's clock.
    pub waiting: Duration,
    /// Brewing, by the café's clock.
    pub brewing: Duration,
    /// When a barista started on it and when it was ready, by the café's
    /// clock: which drinks were brewing at the same time.
    pub brewed: Option<(SystemTime, SystemTime)>,
    /// When the café placed it, by the café's clock.
    pub placed: Option<SystemTime>,
}

impl Visit {
    /// How long the customer waited, by their own clock.
    pub fn latency(&self) -> Duration {
        self.received.saturating_sub(self.sent)
    }
}

/// One run of a rush.
#[derive(Debug)]
pub struct Report {
    /// How the customers waited.
    pub pace: Pace,
    /// How many customers were planned.
    pub planned: usize,
    /// The customer's wall-clock time when the run started, to read the
    /// café's timestamps against.
    pub started_at: SystemTime,
    /// Wall-clock time from the first order sent to the last answer (or the
    /// interruption).
    pub wall: Duration,
    /// The visits that ended, in the order they ended.
    pub visits: Vec<Visit>,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
}

impl Report {
    /// The visits that got their drink.
    pub fn served(&self) -> impl Iterator<Item = (&Visit, &Served)> {
        self.visits
            .iter()
            .filter_map(|v| v.outcome.as_ref().ok().map(|s| (v, s)))
    }

    /// The sum of every served customer's wait.
    pub fn latency_sum(&self) -> Duration {
        self.served().map(|(v, _)| v.latency()).sum()
    }

    /// The longest wait of a served customer.
    pub fn longest(&self) -> Duration {
        self.served()
            .map(|(v, _)| v.latency())
            .max()
            .unwrap_or_default()
    }

    /// The most drinks that were brewing at the same moment, by the café's
    /// own timestamps: how many baristas were really at work.
    pub fn drinks_at_once(&self) -> usize {
        // Sweep over the starts and ends in time order; an end sorts before
        // a start at the same instant (one barista handing over to the
        // next is not two drinks at once).
        let mut edges: Vec<(SystemTime, i32)> = self
            .served()
            .filter_map(|(_, served)| served.brewed)
            .flat_map(|(started, ready)| [(started, 1), (ready, -1)])
            .collect();
        edges.sort();
        let mut brewing = 0i32;
        let mut most = 0i32;
        for (_, change) in edges {
            brewing += change;
            most = most.max(brewing);
        }
        usize::try_from(most).unwrap_or(0)
    }

    /// Served orders per second of the run's wall-clock time.
    pub fn orders_per_second(&self) -> f64 {
        self.served().count() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The trace the run belongs to, as the café reported it.
    pub fn trace_id(&self) -> Option<&str> {
        self.visits.iter().find_map(|v| v.trace_id.as_deref())
    }

    /// The timeline rows, in the order the drinks were ready (so the fan
    /// of a concurrent run reads top to bottom, and so does the staircase
    /// of a café that answers late), labelled by customer.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .visits
            .iter()
            .map(|visit| {
                let served = visit.outcome.as_ref().ok();
                Row {
                    label: format!("#{}", visit.customer),
                    sent: visit.sent,
                    received: visit.received,
                    waiting: served.map(|s| s.waiting).unwrap_or_default(),
                    brewing: served.map(|s| s.brewing).unwrap_or_default(),
                    // The café's placement on this run's axis; before the
                    // run started means the clocks disagree: unknown.
                    placed: served
                        .and_then(|s| s.placed)
                        .and_then(|placed| placed.duration_since(self.started_at).ok()),
                }
            })
            .collect();
        rows.sort_by_key(|row| (row.ready(), row.received));
        rows
    }
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
    // One customer: build the request, send it, wait for the drink. Each
    // gets a clone of the client: a clone is another handle onto the SAME
    // HTTP/2 connection, not a new socket. HTTP/2 multiplexes: every call is
    // its own stream (a numbered exchange of frames) on that connection, so
    // a hundred calls waiting at once are a hundred stream ids on one
    // socket, not a hundred sockets or threads.
    let visit = |customer: usize| {
        let mut cafe = cafe.clone();
        let request = OrderRequest {
            customer: format!("customer-{customer:0width$}"),
            drink: plan.drink.clone(),
            size: pb::Size::from(plan.size) as i32,
            request_id: String::new(),
        };
        async move {
            // Made at the first poll, which is when the customer steps up:
            // the span starts when the order is sent, so its bar in a trace
            // is the customer's wait. Its parent is the run's span, current
            // while the run polls this future.
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
    };
    let mut visits: Pin<Box<dyn Stream<Item = Visit> + '_>> = match pace {
        // `then` runs one future to completion before it starts the next:
        // the customer behind waits for the one in front.
        Pace::Sequential => Box::pin(stream::iter(1..=plan.customers).then(visit)),
        // `buffer_unordered` keeps up to `in_flight` futures running at once
        // and yields each result as soon as it is ready, in any order.
        Pace::Concurrent { in_flight } => Box::pin(
            stream::iter(1..=plan.customers)
                .map(visit)
                .buffer_unordered(in_flight.max(1)),
        ),
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

/// One order in `--json` output.
#[derive(Debug, Serialize)]
struct VisitLine<'a> {
    kind: &'static str,
    mode: &'static str,
    customer: usize,
    sent_ms: f64,
    received_ms: f64,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    barista: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    brewing_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One run's totals in `--json` output.
#[derive(Debug, Serialize)]
struct SummaryLine {
    kind: &'static str,
    mode: &'static str,
    customers: usize,
    served: usize,
    failed: usize,
    interrupted: bool,
    wall_ms: f64,
    latency_sum_ms: f64,
    longest_ms: f64,
    /// The run's trace in Jaeger, when traces are exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_url: Option<String>,
}

/// The comparison in `--json` output.
#[derive(Debug, Serialize)]
struct CompareLine {
    kind: &'static str,
    sequential_wall_ms: f64,
    concurrent_wall_ms: f64,
    speedup: f64,
}

/// Runs `cafe rush`.
pub async fn run(
    connection: &mut Connection,
    out: &Output,
    args: &RushArgs,
) -> Result<Finished, ClientError> {
    let plan = Plan {
        customers: usize::from(args.customers),
        drink: args.drink.clone(),
        size: args.size,
    };
    let in_flight = args.concurrency.map_or(plan.customers, usize::from);
    let (finished, reports) = run_plan(connection, out, &plan, args.mode, in_flight).await?;
    if let Some(path) = &args.svg {
        let panels: Vec<(String, Vec<Row>)> = reports
            .iter()
            .map(|report| (title(&plan, report.pace), report.rows()))
            .collect();
        write_svg(path, &panels)?;
        out.line(format!("timelines drawn in {}", path.display()))?;
    }
    Ok(finished)
}

/// What a run is, as its heading says: `sequential: 6 × medium latte at
/// the counter, one after another`.
pub fn title(plan: &Plan, pace: Pace) -> String {
    let what = match pace {
        Pace::Sequential => format!(
            "{} × {} {} at the counter, one after another",
            plan.customers, plan.size, plan.drink
        ),
        Pace::Concurrent { in_flight } => format!(
            "{} × {} {}, up to {} in flight on one connection",
            plan.customers,
            plan.size,
            plan.drink,
            in_flight.min(plan.customers)
        ),
    };
    format!("{}: {what}", pace.name())
}

/// Writes `(title, rows)` timelines as one SVG picture on a shared axis.
pub fn write_svg(path: &Path, panels: &[(String, Vec<Row>)]) -> Result<(), ClientError> {
    let panels: Vec<timeline::svg::Panel<'_>> = panels
        .iter()
        .map(|(title, rows)| timeline::svg::Panel {
            title: title.clone(),
            rows,
        })
        .collect();
    std::fs::write(path, timeline::svg::render(&panels, None)).map_err(|error| {
        ClientError::Output(std::io::Error::new(
            error.kind(),
            format!("cannot write {}: {error}", path.display()),
        ))
    })
}

/// Runs a rush in `mode` and prints it; returns the reports for callers
/// that explain them (`cafe demo`).
pub async fn run_plan(
    connection: &mut Connection,
    out: &Output,
    plan: &Plan,
    mode: RushMode,
    in_flight: usize,
) -> Result<(Finished, Vec<Report>), ClientError> {
    let paces = match mode {
        RushMode::Sequential => vec![Pace::Sequential],
        RushMode::Concurrent => vec![Pace::Concurrent { in_flight }],
        RushMode::Compare => vec![Pace::Sequential, Pace::Concurrent { in_flight }],
    };
    // One Ctrl-C for the whole command; fused so that, once fired, it stays
    // quiet instead of being polled again.
    let mut interrupt = std::pin::pin!(futures::FutureExt::fuse(ctrl_c()));
    let mut reports: Vec<Report> = Vec::new();
    for pace in paces {
        out.line(title(plan, pace))?;
        let spinner = out.spinner(format!("{}: 0/{} served", pace.name(), plan.customers));
        // The run's span, under the command's root span: in `compare` the
        // two runs are siblings in one trace, on one time axis.
        let run_span = match pace {
            Pace::Sequential => info_span!("sequential", rush.customers = plan.customers),
            Pace::Concurrent { in_flight } => info_span!(
                "concurrent",
                rush.customers = plan.customers,
                rush.in_flight = in_flight
            ),
        };
        let report = rush(
            &connection.cafe,
            &connection.url,
            plan,
            pace,
            &mut interrupt,
            |done, planned| {
                spinner.set_message(format!("{}: {done}/{planned} served", pace.name()));
            },
        )
        .instrument(run_span)
        .await;
        out.clear_spinner(&spinner);

        // No drink at all: the same error for everyone (a bad drink, no
        // café); say it once, as the error it is.
        if !report.interrupted && report.served().next().is_none() {
            if let Some(error) = report.visits.into_iter().find_map(|v| v.outcome.err()) {
                return Err(error);
            }
            return Ok((Finished::Done, reports));
        }
        // The shared axis: the concurrent timeline is drawn on the
        // sequential one's scale, so the two shapes compare by eye.
        let axis_end = reports.iter().map(|r| r.wall).chain([report.wall]).max();
        print_report(out, &report, axis_end)?;
        let interrupted = report.interrupted;
        reports.push(report);
        if interrupted {
            break;
        }
    }

    print_totals(out, &reports)?;
    // One trace for the whole command (both runs of a compare).
    out.trace_line(
        out.trace_url(reports.iter().find_map(Report::trace_id))
            .as_deref(),
    )?;
    let interrupted = reports.iter().any(|r| r.interrupted);
    if interrupted {
        let done: usize = reports.iter().map(|r| r.served().count()).sum();
        eprintln!(
            "interrupted: {done} served; the orders still in flight were dropped, and the café cancels them"
        );
        return Ok((Finished::Interrupted, reports));
    }
    // Some customers went without: show the first reason and fail.
    if let Some(position) = reports
        .iter()
        .position(|r| r.served().count() < r.visits.len())
    {
        let failed = reports[position].visits.len() - reports[position].served().count();
        let error = reports
            .swap_remove(position)
            .visits
            .into_iter()
            .find_map(|v| v.outcome.err())
            .expect("a failed visit");
        eprintln!(
            "{failed} of {} orders failed; the first error follows",
            plan.customers
        );
        return Err(error);
    }
    Ok((Finished::Done, reports))
}

fn print_report(out: &Output, report: &Report, axis_end: Option<Duration>) -> std::io::Result<()> {
    for visit in &report.visits {
        out.json(&visit_line(report.pace, visit))?;
    }
    if !out.json {
        out.line(timeline::render(&report.rows(), out.width, axis_end).trim_end())?;
    }
    out.json(&SummaryLine {
        kind: "summary",
        mode: report.pace.name(),
        customers: report.planned,
        served: report.served().count(),
        failed: report.visits.len() - report.served().count(),
        interrupted: report.interrupted,
        wall_ms: millis(report.wall),
        latency_sum_ms: millis(report.latency_sum()),
        longest_ms: millis(report.longest()),
        trace_url: out.trace_url(report.trace_id()),
    })?;
    out.line("")
}

fn visit_line(pace: Pace, visit: &Visit) -> VisitLine<'_> {
    let served = visit.outcome.as_ref().ok();
    VisitLine {
        kind: "order",
        mode: pace.name(),
        customer: visit.customer,
        sent_ms: millis(visit.sent),
        received_ms: millis(visit.received),
        latency_ms: millis(visit.latency()),
        order_id: served.map(|s| s.order_id.as_str()),
        barista: served.map(|s| s.barista.as_str()),
        waiting_ms: served.map(|s| millis(s.waiting)),
        brewing_ms: served.map(|s| millis(s.brewing)),
        error: visit.outcome.as_ref().err().map(ToString::to_string),
    }
}

/// The table of totals, and the speed-up when both paces ran, as lines.
pub fn totals(reports: &[&Report]) -> Vec<String> {
    let served = |report: &Report| format!("{}/{}", report.served().count(), report.planned);
    // Wide enough for `1000/1000`.
    let width = reports
        .iter()
        .map(|r| served(r).len())
        .chain([7])
        .max()
        .unwrap_or(7);
    let mut lines = vec![format!(
        "{:<11} {:>width$} {:>11} {:>13} {:>13}",
        "", "served", "wall-clock", "sum of waits", "longest wait"
    )];
    for report in reports {
        lines.push(format!(
            "{:<11} {:>width$} {:>11} {:>13} {:>13}",
            report.pace.name(),
            served(report),
            human(report.wall),
            human(report.latency_sum()),
            human(report.longest()),
        ));
    }
    if let [sequential, concurrent] = reports {
        lines.push(format!(
            "speed-up: {:.1}× — the same orders on the same café; only the waiting changed",
            speedup(sequential, concurrent)
        ));
    }
    lines
}

/// How many times shorter the second run was than the first.
pub fn speedup(first: &Report, second: &Report) -> f64 {
    first.wall.as_secs_f64() / second.wall.as_secs_f64().max(1e-9)
}

/// Prints [`totals`], and the comparison as JSON.
fn print_totals(out: &Output, reports: &[Report]) -> std::io::Result<()> {
    for line in totals(&reports.iter().collect::<Vec<_>>()) {
        out.line(line)?;
    }
    if let [sequential, concurrent] = reports {
        let speedup = speedup(sequential, concurrent);
        out.json(&CompareLine {
            kind: "compare",
            sequential_wall_ms: millis(sequential.wall),
            concurrent_wall_ms: millis(concurrent.wall),
            speedup: (speedup * 100.0).round() / 100.0,
        })?;
    }
    Ok(())
}
