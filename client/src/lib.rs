//! The `cafe` CLI: a customer of the gRPC café, and the place where the
//! difference between waiting synchronously and asynchronously becomes
//! something you can see.
//!
//! # Layout
//! - [`cli`]: the commands and flags (clap derive), with the help text.
//! - [`connection`]: dialling the café on one HTTP/2 connection.
//! - [`commands`]: one module per command; [`commands::rush`] is the
//!   customer's half of the lesson, `commands::demo` both halves, and
//!   [`commands::bench`] the load generator that measures the café.
//! - [`timeline`]: the pure renderers of the rush timelines (text and SVG).
//! - [`view`]: orders as lines for people and JSON for programs.
//! - [`output`]: human units, JSON lines, spinners only on a terminal.
//! - [`error`]: every failure as one line (or one JSON line), and its exit
//!   code; [`drink`]: drink names in any case, and "did you mean".
//! - `console` (the `console` cargo feature): tokio-console instead of
//!   exported traces.
//!
//! `main.rs` only parses the command line, starts telemetry and calls
//! [`run`], which runs the command inside its root span: one command, one
//! trace, from the customer through the café to the barista.

pub mod cli;
pub mod commands;
pub mod connection;
#[cfg(feature = "console")]
pub mod console;
pub mod drink;
pub mod error;
pub mod output;
pub mod timeline;
pub mod view;

use std::process::ExitCode;

use cli::{Cli, Command, RushMode};
#[cfg(feature = "demo")]
use commands::demo;
use commands::{Finished, bench, board, health, manual, menu, order, orders, rush, stats};
use error::{ClientError, exit};
use output::Output;
use tracing::{Instrument, Span, field::Empty, info_span};

/// Where `cafe-server` listens by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Runs one command line to the end and returns the process's exit code.
/// Errors are printed here, as one line on stderr, or under `--json` as
/// the last JSON line on stdout (an `error` event).
///
/// The command runs inside a root span named after it (`cafe order`,
/// `cafe rush`, …): one command, one trace, whose every gRPC call is a
/// child. The span ends when this returns, whichever way the command ended,
/// so it is finished before `main` drops the telemetry guard and sends it.
pub async fn run(cli: Cli) -> ExitCode {
    let mut out = Output::detect(cli.json);
    out.trace_links = cli.exports_traces();
    let span = command_span(&cli.command);
    let result = dispatch(&cli, &out)
        .instrument(span.clone())
        .await
        .map_err(|error| match drink(&cli.command) {
            // A refused drink that is a near miss: "did you mean …?".
            Some(drink) => error.about_drink(drink),
            None => error,
        });
    if let Err(error) = &result {
        span.record("otel.status_code", "error");
        span.record("otel.status_description", error.to_string());
    }
    drop(span);
    match result {
        Ok(Finished::Done) => ExitCode::SUCCESS,
        Ok(Finished::Interrupted) => ExitCode::from(exit::INTERRUPTED),
        // A reader that went away (`cafe board | head`) is not an error
        // worth a message.
        Err(ClientError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            // Under --json, one stream for a script: the error is its last
            // event. (If even that cannot be written, stderr still says.)
            if !out.json || out.json("error", &error.json()).is_err() {
                eprintln!("error: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// The drink a command orders, if it orders one.
fn drink(command: &Command) -> Option<&str> {
    match command {
        Command::Order(args) => Some(&args.drink),
        Command::Rush(args) => Some(&args.drink),
        #[cfg(feature = "demo")]
        Command::Demo(args) => Some(&args.drink),
        Command::Bench(args) => Some(&args.drink),
        _ => None,
    }
}

/// The root span of a command: `cafe <command>`, with what it was asked.
fn command_span(command: &Command) -> Span {
    // A span's name must be a constant string, so each command has its own
    // `info_span!`. Every root also declares the status fields that `run`
    // fills in if the command fails (a span only records declared fields).
    macro_rules! root {
        ($name:literal $(, $($field:tt)+)?) => {
            info_span!(
                $name,
                $($($field)+,)?
                otel.status_code = Empty,
                otel.status_description = Empty
            )
        };
    }
    match command {
        Command::Menu => root!("cafe menu"),
        Command::Order(args) => root!(
            "cafe order",
            order.drink = %args.drink,
            order.size = %args.size,
            customer = %args.customer,
            buzzer = args.buzzer
        ),
        Command::Watch { order_id } => root!("cafe watch", order.id = %order_id),
        Command::Get { order_id } => root!("cafe get", order.id = %order_id),
        Command::Cancel(args) => root!("cafe cancel", order.id = %args.order_id),
        Command::Rush(args) => root!(
            "cafe rush",
            rush.mode = match args.mode {
                RushMode::Sequential => "sequential",
                RushMode::Concurrent => "concurrent",
                RushMode::Compare => "compare",
            },
            rush.customers = args.customers,
            order.drink = %args.drink
        ),
        Command::Board => root!("cafe board"),
        Command::Stats(_) => root!("cafe stats"),
        #[cfg(feature = "demo")]
        Command::Demo(args) => root!("cafe demo", rush.customers = args.customers),
        Command::Health(args) => root!("cafe health", service = %args.service),
        Command::Completions(_) => root!("cafe completions"),
        Command::Man(_) => root!("cafe man"),
        Command::Bench(args) => root!(
            "cafe bench",
            bench.rpc = args.rpc.as_str(),
            bench.concurrency = args.concurrency
        ),
    }
}

/// Runs the command, with its output going to `out`.
pub async fn dispatch(cli: &Cli, out: &Output) -> Result<Finished, ClientError> {
    // Commands that dial their own way (or run their own café).
    match &cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(args) => return demo::run(out, args).await,
        Command::Health(args) => {
            return health::run(&cli.dial(), &args.service, args.timeout, out).await;
        }
        // No café needed: these print what the clap definitions say.
        Command::Completions(args) => return manual::completions(args.shell),
        Command::Man(args) => return manual::man(args.command.as_deref()),
        // Its own connections, untraced: a span per call would measure the
        // generator's tracing, not the café.
        Command::Bench(args) => return bench::run(&cli.dial(), out, args).await,
        _ => {}
    }
    let mut connection = connection::connect_to(&cli.dial()).await?;
    match &cli.command {
        Command::Menu => menu::run(&mut connection, out).await,
        Command::Order(args) => order::run(&mut connection, out, args).await,
        Command::Watch { order_id } => orders::watch(&mut connection, out, order_id).await,
        Command::Get { order_id } => orders::get(&mut connection, out, order_id).await,
        Command::Cancel(args) => {
            orders::cancel(&mut connection, out, &args.order_id, &args.claim_token).await
        }
        Command::Rush(args) => rush::run(&mut connection, out, args).await,
        Command::Board => board::run(&mut connection, out).await,
        Command::Stats(args) => stats::run(&mut connection, out, args).await,
        #[cfg(feature = "demo")]
        Command::Demo(_) => unreachable!("handled above"),
        Command::Health(_) | Command::Completions(_) | Command::Man(_) | Command::Bench(_) => {
            unreachable!("handled above")
        }
    }
}
