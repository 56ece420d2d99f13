//! `cafe rush` on the terminal: the heading of each run, its timeline, the
//! totals, `--json` lines and `--svg` pictures.

use std::{path::Path, time::Duration};

use serde::Serialize;
use tracing::{Instrument, info_span};

use super::{Pace, Plan, Report, Visit, rush, speedup, totals};
use crate::{
    cli::{RushArgs, RushMode},
    commands::{Finished, ctrl_c},
    connection::Connection,
    error::ClientError,
    output::{Output, millis},
    timeline::{self, Row},
};

/// One customer's visit in `--json` output: a `customer` event.
#[derive(Debug, Serialize)]
struct VisitLine<'a> {
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

/// One run's totals in `--json` output: a `summary` event.
#[derive(Debug, Serialize)]
struct SummaryLine {
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

/// The comparison in `--json` output: a `compare` event.
#[derive(Debug, Serialize)]
struct CompareLine {
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
        out.json("customer", &visit_line(report.pace, visit))?;
    }
    if !out.json {
        out.line(timeline::render(&report.rows(), out.width, axis_end).trim_end())?;
    }
    out.json(
        "summary",
        &SummaryLine {
            mode: report.pace.name(),
            customers: report.planned,
            served: report.served().count(),
            failed: report.visits.len() - report.served().count(),
            interrupted: report.interrupted,
            wall_ms: millis(report.wall),
            latency_sum_ms: millis(report.latency_sum()),
            longest_ms: millis(report.longest()),
            trace_url: out.trace_url(report.trace_id()),
        },
    )?;
    out.line("")
}

fn visit_line(pace: Pace, visit: &Visit) -> VisitLine<'_> {
    let served = visit.outcome.as_ref().ok();
    VisitLine {
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

/// Prints [`totals`], and the comparison as JSON.
fn print_totals(out: &Output, reports: &[Report]) -> std::io::Result<()> {
    for line in totals(&reports.iter().collect::<Vec<_>>()) {
        out.line(line)?;
    }
    if let [sequential, concurrent] = reports {
        let speedup = speedup(sequential, concurrent);
        out.json(
            "compare",
            &CompareLine {
                sequential_wall_ms: millis(sequential.wall),
                concurrent_wall_ms: millis(concurrent.wall),
                speedup: (speedup * 100.0).round() / 100.0,
            },
        )?;
    }
    Ok(())
}
