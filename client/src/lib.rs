//! The `cafe` CLI: a customer of the gRPC café, and the place where the
//! difference between waiting synchronously and asynchronously becomes
//! something you can see.
//!
//! # Layout
//! - [`cli`]: the commands and flags (clap derive), with the help text.
//! - [`connection`]: dialling the café on one HTTP/2 connection.
//! - [`commands`]: one module per command; [`commands::rush`] is the lesson.
//! - [`timeline`]: the pure renderer of the rush timelines.
//! - [`view`]: orders as lines for people and JSON for programs.
//! - [`output`]: human units, JSON lines, spinners only on a terminal.
//! - [`error`]: every failure as one line, and its exit code.
//!
//! `main.rs` only parses the command line, starts logging and calls [`run`].

pub mod cli;
pub mod commands;
pub mod connection;
pub mod error;
pub mod output;
pub mod timeline;
pub mod view;

use std::process::ExitCode;

use cli::{Cli, Command};
use commands::{Finished, board, demo, health, menu, order, orders, rush};
use error::{ClientError, exit};
use output::Output;

/// Where `cafe-server` listens by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Runs one command line to the end and returns the process's exit code.
/// Errors are printed here, as one line on stderr.
pub async fn run(cli: Cli) -> ExitCode {
    let out = Output::detect(cli.json);
    match dispatch(&cli, &out).await {
        Ok(Finished::Done) => ExitCode::SUCCESS,
        Ok(Finished::Interrupted) => ExitCode::from(exit::INTERRUPTED),
        // A reader that went away (`cafe board | head`) is not an error
        // worth a message.
        Err(ClientError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs the command, with its output going to `out`.
pub async fn dispatch(cli: &Cli, out: &Output) -> Result<Finished, ClientError> {
    // Commands that dial their own way (or run their own café).
    match &cli.command {
        Command::Demo(args) => return demo::run(out, args).await,
        Command::Health(args) => {
            return health::run(&cli.server, &args.service, args.timeout, out).await;
        }
        _ => {}
    }
    let mut connection = connection::connect(&cli.server).await?;
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
        Command::Demo(_) | Command::Health(_) => unreachable!("handled above"),
    }
}
