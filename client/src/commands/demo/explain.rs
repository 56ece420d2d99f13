//! What each half of the demo showed, in words for people and in JSON
//! lines for `--json`: every sentence quotes what was just measured.

use serde::Serialize;

use super::{
    Run,
    probe::{MenuLine, MenuTimes, RuntimeSeen},
};
use crate::{
    cli::DemoArgs,
    output::{human, millis},
};

/// `3.51s (the slowest of 1 call)`.
pub(super) fn menu_summary(menu: Option<&MenuTimes>) -> String {
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

/// The demo's first lines: what the two halves are and what each measures,
/// before any timeline, so the first screen says what the demo is about.
/// Only the halves `--part` runs are named.
pub(super) fn opening(args: &DemoArgs) -> Vec<String> {
    let n = args.customers;
    let mut lines =
        vec!["Synchronous vs asynchronous waiting, told as a café (Flask vs FastAPI):".into()];
    let numbered = args.part.customer() && args.part.barista();
    let mark = |i: usize| {
        if numbered {
            format!("{i}. ")
        } else {
            "- ".into()
        }
    };
    if args.part.customer() {
        lines.push(format!(
            "{}The customer waits at the counter, blocked ({n} one after another), or as",
            mark(1)
        ));
        lines.push(format!(
            "   with a buzzer, free meanwhile (all {n} at once). Measured: how long all {n} take."
        ));
    }
    if args.part.barista() {
        lines.push(format!(
            "{}The barista blocks a worker thread while brewing (Flask-like) or awaits",
            mark(2)
        ));
        lines.push(
            "   (FastAPI-like). Measured: drinks brewing at once, orders/s, menu delays.".into(),
        );
    }
    lines.push(String::new());
    lines
}

/// What the customer's two timelines show, in the numbers they measured.
pub(super) fn explain_customer(sequential: &Run, concurrent: &Run, baristas: u16) -> Vec<String> {
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
pub(super) fn explain_barista(blocking: &Run, async_: &Run, workers: u16) -> Vec<String> {
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

/// One run in `--json` output: a `run` event.
#[derive(Debug, Serialize)]
pub(super) struct RunLine<'a> {
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
    pub(super) fn new(
        half: &'static str,
        run_name: &'static str,
        run: &'a Run,
        args: &DemoArgs,
    ) -> Self {
        let report = &run.report;
        RunLine {
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
