//! The command line: every command, flag and environment variable of `cafe`,
//! with the help text that explains what each one shows.

use std::{ffi::OsStr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, error::ErrorKind};

use crate::{
    error::{ErrorLine, exit},
    output::print_json,
};

mod args;
pub use args::{
    BenchArgs, BenchRpc, CancelArgs, CompletionsArgs, DemoArgs, DemoPart, HealthArgs, ManArgs,
    OrderArgs, RushArgs, RushMode, StatsArgs,
};

/// Shown at the end of `cafe --help`.
const AFTER_HELP: &str = "\
Start here:
  cafe demo                      two cafés in this process, and the lesson in 20 s
  cafe rush --mode compare       the customer's half against a running cafe-server
  cafe stats --every 1s          orders in line, brewing, and the café's runtime

Exit codes:
  0 done               4 deadline exceeded    7 wrong claim token
  1 unexpected error   5 refused (bad field)  8 café too busy
  2 bad command line   6 no such order        9 order already ended
  3 no café / not serving                   130 interrupted (Ctrl-C)";

/// `cafe`: order coffee from a gRPC café, at the counter or with a buzzer,
/// and see why waiting asynchronously serves everyone sooner.
#[derive(Debug, Clone, Parser)]
#[command(name = "cafe", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The café's gRPC address: http://host:port, https://host:port for
    /// TLS (see --ca), or host:port.
    #[arg(long, global = true, env = "CAFE_SERVER", default_value = crate::DEFAULT_SERVER)]
    pub server: String,

    /// Trust the café's TLS certificate if this CA (PEM) signed it: dial
    /// over TLS (a bare host:port then means https://) [default: none,
    /// plaintext; an https:// address without it trusts no certificate].
    #[arg(long, global = true, env = "CAFE_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,

    /// Mutual TLS: the certificate (PEM) to present to a server started
    /// with --tls-client-ca; needs --client-key and --ca [default: none].
    #[arg(long, global = true, env = "CAFE_CLIENT_CERT", value_name = "PEM",
          requires_all = ["client_key", "ca"])]
    pub client_cert: Option<PathBuf>,

    /// The private key (PEM) of --client-cert [default: none].
    #[arg(
        long,
        global = true,
        env = "CAFE_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// Print JSON lines instead of text: one event per line, each
    /// `{"event": KIND, ...}`, errors too (an `error` event with its gRPC
    /// code and exit code; see docs/cli.md).
    #[arg(long, global = true, env = "CAFE_JSON", default_value_t = false)]
    pub json: bool,

    /// Send traces over OTLP/gRPC to this collector, e.g.
    /// http://localhost:4317 (Jaeger or an OpenTelemetry Collector); `order`
    /// and `rush` then print a link to their trace in the Jaeger UI
    /// (CAFE_JAEGER_UI, default http://localhost:16686)
    /// [default: none, traces are not exported].
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses this process's command line. What clap refuses ends the
    /// command as clap would end it (help and `--version` on stdout with
    /// exit code 0; a mistake on stderr with exit code 2), except that
    /// under `--json` a mistake is one `error` event, as every other error
    /// is: the `Err` is the exit code to end with.
    pub fn parse_args() -> Result<Cli, ExitCode> {
        Cli::try_parse().map_err(|error| {
            let asked = matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            );
            if !asked && json_asked() {
                // clap's first line says what was wrong; the rest (a tip,
                // the usage) is for people. A missing command is answered
                // with the whole help, which has no such line.
                let rendered = error.render().to_string();
                let message = match error.kind() {
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        "no command given: see `cafe --help` for the commands".to_owned()
                    }
                    _ => rendered
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_owned(),
                };
                let line = ErrorLine {
                    code: None,
                    exit_code: exit::USAGE,
                    message,
                };
                if print_json("error", &line).is_ok() {
                    return ExitCode::from(exit::USAGE);
                }
            }
            let _ = error.print();
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(exit::USAGE))
        })
    }

    /// Where the café is and how to trust it (`--server`, `--ca`, and
    /// `--client-cert`/`--client-key` for mutual TLS).
    pub fn dial(&self) -> crate::connection::Dial {
        crate::connection::Dial {
            server: self.server.clone(),
            ca: self.ca.clone(),
            identity: self.client_cert.clone().zip(self.client_key.clone()),
        }
    }

    /// Whether traces are exported (an endpoint is configured), and so
    /// whether a link to the trace leads anywhere.
    pub fn exports_traces(&self) -> bool {
        self.otlp_endpoint
            .as_deref()
            .is_some_and(|endpoint| !endpoint.trim().is_empty())
    }
}

/// Whether a command line clap could not parse asked for `--json` (the flag
/// before any `--`, or `CAFE_JSON=true`).
fn json_asked() -> bool {
    let flag = std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != OsStr::new("--"))
        .any(|arg| arg == OsStr::new("--json"));
    // clap reads a flag's environment variable as `true` or `false` only.
    let env = std::env::var("CAFE_JSON").is_ok_and(|value| value == "true");
    flag || env
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The drinks, their sizes and brew times (also at the café's time scale).
    Menu,

    /// Order one drink: wait at the counter (unary OrderCoffee), or take a
    /// buzzer with --buzzer (streaming OrderWithBuzzer) and watch it move.
    ///
    /// At the counter the call returns only when the drink is ready; a
    /// --deadline makes the café cancel the order if it is not ready in
    /// time. With a buzzer the ticket comes back at once (order id, place
    /// in line, claim token) and every change follows; Ctrl-C leaves the
    /// order brewing, and `cafe watch` picks it up again.
    Order(OrderArgs),

    /// Re-attach a buzzer to an order placed earlier and follow it to the end.
    Watch {
        /// The order's id, from its ticket (e.g. ord-3f9c2a1b7e04).
        order_id: String,
    },

    /// Show one order as it is now.
    Get {
        /// The order's id.
        order_id: String,
    },

    /// Cancel an order. Needs the claim token from its ticket.
    Cancel(CancelArgs),

    /// N customers order at the counter, one after another (sequential) or
    /// all at once (concurrent), and a timeline shows the difference.
    ///
    /// Every customer makes the same unary OrderCoffee call on the same
    /// connection; only when the client awaits differs. Sequential awaits
    /// each drink before sending the next order: the run costs the SUM of
    /// the waits. Concurrent sends up to --concurrency orders at once (one
    /// HTTP/2 connection carries them all as separate streams): the run costs
    /// about the LONGEST wait, bounded by how many baristas the café has.
    ///
    /// The timeline draws one row per customer from order to drink: ░ is
    /// time in line and █ brewing (by the café's clock), · the rest (the
    /// network). Many customers are grouped into rows so it fits the screen.
    Rush(RushArgs),

    /// The order board over the counter: what is in line, brewing, ready.
    Board,

    /// How busy the café is: orders in line and brewing, and its async
    /// runtime's worker threads and live tasks (GetStats).
    ///
    /// Run it beside a big rush (`cafe rush --customers 1000 --mode
    /// concurrent`): a thousand customers waiting at the counter are a
    /// thousand tasks parked at an `.await`, on a handful of worker threads.
    Stats(StatsArgs),

    /// Both halves of the lesson, measured, with nothing else running.
    ///
    /// The customer's half: one café in this process, the same rush at the
    /// counter one after another, then all at once (a staircase, then a
    /// fan). The barista's half: the same concurrent rush against two cafés
    /// with the same baristas and the same few worker threads, one whose
    /// baristas block their thread while brewing (Flask-like) and one whose
    /// baristas await (FastAPI-like), and how long the menu took meanwhile.
    /// Ends with the key differences, in the numbers just measured.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),

    /// Check the café's gRPC health: exit 0 when SERVING, 3 otherwise.
    Health(HealthArgs),

    /// Print a shell completion script for `cafe`, e.g.
    /// `cafe completions bash > ~/.local/share/bash-completion/completions/cafe`.
    Completions(CompletionsArgs),

    /// Print the `cafe(1)` man page (roff), e.g. `cafe man | man -l -`, or
    /// a command's own page (`cafe man demo` is `cafe-demo(1)`).
    Man(ManArgs),
    /// Load generator (in the style of ghz): keep N orders in flight and
    /// report results by gRPC status, latency percentiles, throughput, and
    /// the CPU and memory it cost (this process's, and the café's with
    /// --server-pid).
    ///
    /// A fixed pool of --concurrency worker tasks each sends one call after
    /// another, so exactly that many orders are in flight; they share
    /// --connections HTTP/2 connections, round-robin. A call succeeds only
    /// when its gRPC status is OK and the order ended READY (for a buzzer:
    /// the stream's last event is READY and it ends OK); everything else is
    /// counted under its status code, e.g. RESOURCE_EXHAUSTED when the
    /// café's line is full. Latency percentiles are of the calls that
    /// succeeded.
    ///
    /// With --duration, the calls that END inside the window after the
    /// warm-up are counted, and those still in flight at its end are
    /// abandoned (cancelled, reported apart). With --requests, exactly that
    /// many calls are sent after the warm-up and all of them are awaited.
    ///
    /// After UNAVAILABLE a worker waits before its next call, as a
    /// well-behaved gRPC client does: as long as a closing café's retry
    /// hint says (grpc-retry-pushback-ms), or else a backoff from 100 ms
    /// doubling to 2 s; the connection is dialled again if it has gone.
    Bench(BenchArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
