//! `cafe demo`: both halves of the lesson, measured, with nothing else
//! running.
//!
//! - **The customer's half** (how the customer waits): one café, the same
//!   rush at the counter twice, one customer after another (a staircase:
//!   the run costs the *sum* of the waits), then all at once (a fan: about
//!   the *longest* wait).
//! - **The barista's half** (how the barista waits): the same concurrent
//!   rush against two cafés with the same baristas and the same few runtime
//!   worker threads. In the Flask-like one a brewing barista blocks its
//!   worker thread (`--brew-mode blocking`), so the fan turns back into a
//!   staircase although the customers are concurrent, and the menu, which
//!   needs no barista, waits behind the drinks. In the FastAPI-like one a
//!   brewing barista is a parked task, and the threads serve everyone else.
//!
//! It ends with the seed's "Key differences" table filled with what was
//! just measured ([`table`]). Every number is measured (the customers'
//! clock, the café's timestamps, the runtime's metrics), none is computed
//! from the menu. The cafés are real `cafe_server::Application`s, each on
//! its own runtime and thread ([`cafe`]); their logs stay quiet (warnings
//! only) unless `RUST_LOG` asks.

pub mod cafe;
pub mod probe;
pub mod table;

use std::{collections::BTreeSet, future::Future, time::Duration};

use cafe_domain::{
    brewing::BrewMode, convert::duration_from_wire, menu::Size, proto::v1::GetMenuRequest,
};
use cafe_server::Config;
use futures::FutureExt;
use grpc_serving::ServerFlags;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{Instrument, Span, info_span};

use self::{
    cafe::DemoCafe,
    probe::{MenuLine, MenuTimes, RuntimeSeen},
    table::{KeyDifferences, Measured, Pair, Side},
};
use super::{
    Finished, ctrl_c,
    rush::{self, Pace, Plan, Report},
};
use crate::{
    cli::DemoArgs,
    connection::{self, Connection},
    error::ClientError,
    output::{Output, human, millis},
    timeline::Row,
};

/// Runs the demo: the halves `--part` asks for, then the table.
pub async fn run(out: &Output, args: &DemoArgs) -> Result<Finished, ClientError> {
    let plan = Plan {
        customers: usize::from(args.customers),
        drink: args.drink.clone(),
        size: Size::Medium,
    };
    // One Ctrl-C for the whole demo; fused so that, once fired, it stays
    // quiet instead of being polled again.
    let mut interrupt = std::pin::pin!(ctrl_c().fuse());
    let mut measured = Measured {
        customers: plan.customers,
        baristas: args.baristas,
        workers: args.workers,
        customer: None,
        barista: None,
    };
    // Every timeline drawn, for `--svg`.
    let mut panels: Vec<(String, Vec<Row>)> = Vec::new();

    if args.part.customer() {
        match customer_half(out, args, &plan, &mut interrupt, &mut panels).await? {
            Some(pair) => measured.customer = Some(pair),
            None => return Ok(Finished::Interrupted),
        }
    }
    if args.part.barista() {
        match barista_half(out, args, &plan, &mut interrupt, &mut panels).await? {
            Some(pair) => measured.barista = Some(pair),
            None => return Ok(Finished::Interrupted),
        }
    }

    for line in table::lines(&measured) {
        out.line(line)?;
    }
    if let Some(numbers) = KeyDifferences::from_measured(&measured) {
        out.json(&numbers)?;
    }
    if let Some(path) = &args.svg {
        rush::write_svg(path, &panels)?;
        out.line(format!("\ntimelines drawn in {}", path.display()))?;
    }
    out.line("")?;
    out.line("Now against a real server, in two terminals:")?;
    out.line("  cargo run --release --bin cafe-server -- --baristas 3 --time-scale 0.03")?;
    out.line("  cargo run --release --bin cafe -- rush --mode compare")?;
    out.line("and the barista's half: add --brew-mode blocking --runtime-workers 2 to the")?;
    out.line("server, and watch it with `cafe stats --every 500ms` in a third terminal.")?;
    Ok(Finished::Done)
}

/// A demo café's settings: `--baristas` baristas brewing `brew_mode`, at
/// `--time-scale`.
fn config(args: &DemoArgs, brew_mode: BrewMode) -> Config {
    Config {
        baristas: u32::from(args.baristas),
        time_scale: args.time_scale,
        brew_mode,
        server: ServerFlags {
            runtime_workers: Some(args.workers),
            shutdown_grace: Duration::from_secs(2),
            ..ServerFlags::default()
        },
        ..Config::default()
    }
}

/// One run of the demo: the rush's report, and what was seen meanwhile.
struct Run {
    report: Report,
    menu: Option<MenuTimes>,
    runtime: RuntimeSeen,
}

impl Run {
    fn side(&self) -> Side {
        Side {
            wall: self.report.wall,
            at_once: self.report.drinks_at_once(),
            per_second: self.report.orders_per_second(),
            menu: self.menu.as_ref().and_then(MenuTimes::slowest),
        }
    }

    /// The baristas who brewed at least one drink, by name.
    fn brewers(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self
            .report
            .served()
            .map(|(_, served)| served.barista.as_str())
            .collect();
        names.into_iter().collect()
    }
}

/// Who orders what where, and what else to watch meanwhile.
struct Setup<'a> {
    /// The customers and their drink.
    plan: &'a Plan,
    /// The customers' connection.
    connection: &'a Connection,
    /// A second connection, for a customer asking for the menu, if any.
    menu: Option<&'a Connection>,
    /// The café's runtime.
    cafe: &'a DemoCafe,
}

/// Runs one rush, prints its heading and timeline, and returns it; `None`
/// if Ctrl-C stopped it (what was served is printed first).
async fn one_run(
    out: &Output,
    setup: &Setup<'_>,
    pace: Pace,
    heading: String,
    axis_end: Option<Duration>,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    span: Span,
) -> Result<Option<Run>, ClientError> {
    let plan = setup.plan;
    out.line(&heading)?;
    let spinner = out.spinner(format!("{}: 0/{} served", pace.name(), plan.customers));
    // The rush, and beside it (same task, same span) the menu probe and
    // the runtime sampler, until the rush ends.
    let (stop, stopped) = watch::channel(false);
    let rush = async {
        let report = rush::rush(
            &setup.connection.cafe,
            &setup.connection.url,
            plan,
            pace,
            interrupt,
            |done, planned| {
                spinner.set_message(format!("{}: {done}/{planned} served", pace.name()))
            },
        )
        .await;
        let _ = stop.send(true);
        report
    };
    let menu = async {
        match setup.menu {
            Some(connection) => {
                Some(probe::menu_while(connection.cafe.clone(), stopped.clone()).await)
            }
            None => None,
        }
    };
    let runtime = probe::runtime_while(setup.cafe.metrics.clone(), stopped.clone());
    let (report, menu, runtime) = async { tokio::join!(rush, menu, runtime) }
        .instrument(span)
        .await;
    out.clear_spinner(&spinner);

    if !report.interrupted && report.served().next().is_none() {
        // No drink at all: the same error for everyone; say it once.
        let error = report.visits.into_iter().find_map(|v| v.outcome.err());
        return Err(error.unwrap_or_else(|| ClientError::Demo("no customer was served".into())));
    }
    if !out.json {
        out.line(crate::timeline::render(&report.rows(), out.width, axis_end).trim_end())?;
    }
    if report.interrupted {
        let done = report.served().count();
        eprintln!("interrupted: {done} served; the orders still in flight were dropped");
        return Ok(None);
    }
    if let Some(error) = report.visits.iter().find_map(|v| v.outcome.as_ref().err()) {
        eprintln!(
            "{} of {} orders failed",
            report.visits.len() - report.served().count(),
            plan.customers
        );
        return Err(ClientError::Demo(format!("an order failed: {error}")));
    }
    Ok(Some(Run {
        report,
        menu,
        runtime,
    }))
}

/// The customer's half: one async café, the rush one after another, then
/// all at once. `None` if interrupted.
async fn customer_half(
    out: &Output,
    args: &DemoArgs,
    plan: &Plan,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    panels: &mut Vec<(String, Vec<Row>)>,
) -> Result<Option<Pair>, ClientError> {
    let cafe = DemoCafe::open(config(args, BrewMode::Async), args.workers, "demo-cafe").await?;
    let result = async {
        let connection = connection::connect(&cafe.url).await?;
        out.line("THE CUSTOMER'S HALF: how the customer waits")?;
        out.line(format!(
            "A café is open in this process at {} with {} baristas.",
            cafe.url, args.baristas
        ))?;
        out.line(expected_brew(&connection, args).await?)?;
        out.line("")?;
        let setup = Setup {
            plan,
            connection: &connection,
            menu: None,
            cafe: &cafe,
        };
        let sequential = Pace::Sequential;
        let Some(first) = one_run(
            out,
            &setup,
            sequential,
            rush::title(plan, sequential),
            None,
            interrupt,
            info_span!("sequential", rush.customers = plan.customers),
        )
        .await?
        else {
            return Ok(None);
        };
        out.line("")?;
        let concurrent = Pace::Concurrent {
            in_flight: plan.customers,
        };
        let Some(second) = one_run(
            out,
            &setup,
            concurrent,
            rush::title(plan, concurrent),
            Some(first.report.wall),
            interrupt,
            info_span!("concurrent", rush.customers = plan.customers),
        )
        .await?
        else {
            return Ok(None);
        };
        out.line("")?;
        for line in rush::totals(&[&first.report, &second.report]) {
            out.line(line)?;
        }
        for line in explain_customer(&first, &second, args.baristas) {
            out.line(line)?;
        }
        for (half, name, run) in [
            ("customer", "sequential", &first),
            ("customer", "concurrent", &second),
        ] {
            out.json(&RunLine::new(half, name, run, args))?;
            panels.push((rush::title(plan, run.report.pace), run.report.rows()));
        }
        out.line("")?;
        Ok(Some(Pair {
            sync: first.side(),
            async_: second.side(),
        }))
    }
    .await;
    cafe.close().await?;
    result
}

/// The barista's half: the same concurrent rush at a blocking café, then
/// at an async one, with the menu asked meanwhile. `None` if interrupted.
async fn barista_half(
    out: &Output,
    args: &DemoArgs,
    plan: &Plan,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    panels: &mut Vec<(String, Vec<Row>)>,
) -> Result<Option<Pair>, ClientError> {
    let (baristas, workers) = (args.baristas, args.workers);
    out.line("THE BARISTA'S HALF: how the barista waits")?;
    out.line(format!(
        "Two cafés open in this process, each with {baristas} baristas on a runtime of {workers}"
    ))?;
    out.line(format!(
        "worker threads. {} customers order a {} at each, all at once; meanwhile",
        plan.customers, plan.drink
    ))?;
    out.line(format!(
        "another customer asks for the menu every {} (it needs no barista).",
        human(probe::MENU_PAUSE)
    ))?;
    out.line("")?;

    let pace = Pace::Concurrent {
        in_flight: plan.customers,
    };
    let mut runs: Vec<Run> = Vec::new();
    for (mode, name, heading) in [
        (
            BrewMode::Blocking,
            "demo-blocking-cafe",
            "blocking café (Flask-like): a brewing barista sleeps its worker thread",
        ),
        (
            BrewMode::Async,
            "demo-async-cafe",
            "async café (FastAPI-like): a brewing barista awaits a timer",
        ),
    ] {
        let cafe = DemoCafe::open(config(args, mode), workers, name).await?;
        let result = async {
            let connection = connection::connect(&cafe.url).await?;
            let menu = connection::connect(&cafe.url).await?;
            let setup = Setup {
                plan,
                connection: &connection,
                menu: Some(&menu),
                cafe: &cafe,
            };
            let span = match mode {
                BrewMode::Blocking => info_span!("blocking", rush.customers = plan.customers),
                BrewMode::Async => info_span!("async", rush.customers = plan.customers),
            };
            let axis_end = runs.first().map(|run| run.report.wall);
            one_run(
                out,
                &setup,
                pace,
                heading.to_owned(),
                axis_end,
                interrupt,
                span,
            )
            .await
        }
        .await;
        cafe.close().await?;
        let Some(run) = result? else {
            return Ok(None);
        };
        out.line(format!(
            "  GetMenu during the rush: {}",
            menu_summary(run.menu.as_ref())
        ))?;
        out.line(format!(
            "  the café's runtime: {} worker threads, at most {} tasks alive",
            run.runtime.workers, run.runtime.tasks_alive_max
        ))?;
        out.line("")?;
        panels.push((heading.to_owned(), run.report.rows()));
        runs.push(run);
    }
    let [blocking, async_] = <[Run; 2]>::try_from(runs)
        .map_err(|_| ClientError::Demo("the barista's half did not run both cafés".into()))?;

    let row = |name: &str, run: &Run| {
        format!(
            "{name:<9} {:>7} {:>11} {:>16} {:>9.2} {:>13}",
            format!("{}/{}", run.report.served().count(), run.report.planned),
            human(run.report.wall),
            format!("{} of {baristas}", run.report.drinks_at_once()),
            run.report.orders_per_second(),
            run.menu
                .as_ref()
                .and_then(MenuTimes::slowest)
                .map_or_else(|| "-".to_owned(), human),
        )
    };
    out.line(format!(
        "{:<9} {:>7} {:>11} {:>16} {:>9} {:>13}",
        "", "served", "wall-clock", "brewing at once", "orders/s", "GetMenu took"
    ))?;
    out.line(row("blocking", &blocking))?;
    out.line(row("async", &async_))?;
    out.line(format!(
        "speed-up: {:.1}× — the same customers; only how the baristas wait changed",
        rush::speedup(&blocking.report, &async_.report)
    ))?;
    for line in explain_barista(&blocking, &async_, workers) {
        out.line(line)?;
    }
    out.line("")?;
    for (name, run) in [("blocking", &blocking), ("async", &async_)] {
        out.json(&RunLine::new("barista", name, run, args))?;
    }
    Ok(Some(Pair {
        sync: blocking.side(),
        async_: async_.side(),
    }))
}

/// `Its clock runs at ×0.03: a latte (menu: 40s) should take about 1.2s to
/// brew.` What to expect, from the café's own menu.
async fn expected_brew(connection: &Connection, args: &DemoArgs) -> Result<String, ClientError> {
    let menu = connection
        .cafe
        .clone()
        .get_menu(GetMenuRequest {})
        .await
        .map_err(|s| ClientError::from_status(s, &connection.url, None))?
        .into_inner();
    let drink = menu
        .drinks
        .iter()
        .find(|d| d.id == args.drink)
        .ok_or_else(|| {
            ClientError::InvalidArgument(format!("{:?} is not on the menu", args.drink))
        })?;
    let menu_time = duration_from_wire(drink.brew_time.as_ref());
    Ok(format!(
        "Its clock runs at ×{}: a {} (menu: {}) should take about {} to brew.",
        menu.time_scale,
        drink.id,
        human(menu_time),
        human(menu_time.mul_f64(menu.time_scale))
    ))
}

/// `3.51s (the slowest of 1 call)`.
fn menu_summary(menu: Option<&MenuTimes>) -> String {
    match menu.and_then(|m| m.slowest().map(|slowest| (m, slowest))) {
        Some((menu, slowest)) => format!(
            "{} (the slowest of {} call{})",
            human(slowest),
            menu.calls.len(),
            if menu.calls.len() == 1 { "" } else { "s" }
        ),
        None => "not answered".into(),
    }
}

/// What the customer's two timelines show, in the numbers they measured.
fn explain_customer(sequential: &Run, concurrent: &Run, baristas: u16) -> Vec<String> {
    let (first, second) = (&sequential.report, &concurrent.report);
    let n = first.planned;
    let at_once = first.drinks_at_once();
    let mut lines = vec![
        String::new(),
        "What the two timelines show".into(),
        "  sequential: each customer waited for their drink before the next ordered.".into(),
        format!(
            "    The run took {}: the SUM of the {n} waits ({}).",
            human(first.wall),
            human(first.latency_sum())
        ),
        format!(
            "    At most {at_once} drink{} brewing at a time; {} of the {baristas} baristas stood idle.",
            if at_once == 1 { " was" } else { "s were" },
            usize::from(baristas).saturating_sub(at_once)
        ),
        format!("  concurrent: all {n} orders were in flight at once, on one connection."),
        format!(
            "    The run took {}: about the LONGEST single wait ({}).",
            human(second.wall),
            human(second.longest())
        ),
    ];
    let brewing = second.drinks_at_once();
    lines.push(if brewing < n {
        format!(
            "    {brewing} drinks brewed at once, one per barista: the others waited in line (░)."
        )
    } else {
        format!("    All {brewing} drinks brewed at once.")
    });
    lines.extend([
        String::new(),
        "  Like a coffee and a book: wait for the coffee and then buy the book, and".into(),
        "  you pay both waits; order the coffee, buy the book while it brews, and you".into(),
        "  pay only the longer one. Waiting asynchronously is ordering the coffee.".into(),
    ]);
    lines
}

/// What the barista's two timelines show, in the numbers they measured.
fn explain_barista(blocking: &Run, async_: &Run, workers: u16) -> Vec<String> {
    let menu = |run: &Run| {
        run.menu
            .as_ref()
            .and_then(MenuTimes::slowest)
            .map_or_else(|| "-".to_owned(), human)
    };
    vec![
        String::new(),
        "What the two timelines show".into(),
        "  blocking: the customers ordered all at once, yet the drinks were brewed in".into(),
        format!(
            "    steps, at most {} at a time: a brewing barista holds one of the {workers} worker",
            blocking.report.drinks_at_once()
        ),
        "    threads for the whole brew (std::thread::sleep), and with every thread".into(),
        "    held the café cannot even read an order or send an answer (the ·).".into(),
        format!(
            "    The menu needs no barista, yet it waited {} for a thread.",
            menu(blocking)
        ),
        "  async: a brewing barista is a task parked at sleep().await, not a busy".into(),
        format!(
            "    thread: {} drinks at once on the same {workers} threads, and the menu took {}.",
            async_.report.drinks_at_once(),
            menu(async_)
        ),
        String::new(),
        "  Like a barista who stands and watches the machine, or one who takes the next".into(),
        "  order while it runs: the second serves everyone sooner with the same hands.".into(),
    ]
}

/// One run in `--json` output.
#[derive(Debug, Serialize)]
struct RunLine<'a> {
    kind: &'static str,
    half: &'static str,
    run: &'static str,
    customers: usize,
    baristas: u16,
    workers: u16,
    served: usize,
    wall_ms: f64,
    latency_sum_ms: f64,
    longest_ms: f64,
    drinks_at_once: usize,
    orders_per_second: f64,
    brewed_by: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    menu: Option<MenuLine>,
    runtime: RuntimeSeen,
}

impl<'a> RunLine<'a> {
    fn new(half: &'static str, run_name: &'static str, run: &'a Run, args: &DemoArgs) -> Self {
        let report = &run.report;
        RunLine {
            kind: "run",
            half,
            run: run_name,
            customers: report.planned,
            baristas: args.baristas,
            workers: args.workers,
            served: report.served().count(),
            wall_ms: millis(report.wall),
            latency_sum_ms: millis(report.latency_sum()),
            longest_ms: millis(report.longest()),
            drinks_at_once: report.drinks_at_once(),
            orders_per_second: (report.orders_per_second() * 100.0).round() / 100.0,
            brewed_by: run.brewers(),
            menu: run.menu.as_ref().map(MenuLine::from),
            runtime: run.runtime,
        }
    }
}
