//! `cafe demo`: both halves of the lesson, measured, with nothing else
//! running: the customer's half (one café, the same rush one customer after
//! another, then all at once) and the barista's half (the same concurrent
//! rush at a café whose baristas block their worker thread and at one whose
//! baristas await, with the same baristas and threads). What each shows is
//! told in `docs/lesson.md`.
//!
//! It ends with the seed's "Key differences" table filled with what was
//! just measured ([`table`]); every number is measured, none computed from
//! the menu. The cafés are real `cafe_server::Application`s, each on its own
//! runtime and thread ([`cafe`]), so a blocked café stalls only itself;
//! their logs stay quiet (warnings only) unless `RUST_LOG` asks.

pub mod cafe;
mod explain;
pub mod probe;
pub mod table;

use std::{collections::BTreeSet, future::Future, time::Duration};

use cafe_domain::{
    brewing::BrewMode, convert::duration_from_wire, menu::Size, proto::v1::GetMenuRequest,
};
use cafe_server::Config;
use futures::{FutureExt, future::OptionFuture};
use grpc_serving::ServerFlags;
use tokio::sync::watch;
use tracing::{Instrument, Span, info_span};

use self::{
    cafe::DemoCafe,
    explain::{RunLine, explain_barista, explain_customer, menu_summary, opening},
    probe::{MenuTimes, RuntimeSeen},
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
    output::{Output, human},
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

    for line in opening(args) {
        out.line(line)?;
    }
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
        out.json("key_differences", &numbers)?;
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
    let menu: OptionFuture<_> = setup
        .menu
        .map(|connection| probe::menu_while(connection.cafe.clone(), stopped.clone()))
        .into();
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
            out.json("run", &RunLine::new(half, name, run, args))?;
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
        out.json("run", &RunLine::new("barista", name, run, args))?;
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
