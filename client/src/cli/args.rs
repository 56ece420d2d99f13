//! Each command's own arguments (`cafe order`, `cafe rush`, `cafe bench`…),
//! with the help text that says what each one changes; the commands
//! themselves and the global flags are in `cli.rs`.

use std::{path::PathBuf, time::Duration};

use cafe_domain::menu::{Size, TimeScale};
use clap::{Args, ValueEnum};

/// `cafe order`.
#[derive(Debug, Clone, Args)]
pub struct OrderArgs {
    /// The drink's menu id (see `cafe menu`), e.g. latte, in any case.
    #[arg(value_parser = crate::drink::menu_id)]
    pub drink: String,

    /// Cup size: small, medium or large.
    #[arg(long, env = "CAFE_SIZE", default_value = "medium")]
    pub size: Size,

    /// Whose name goes on the cup: the order's `customer`, as the café
    /// and grpcurl call it (--name is the same flag, kept for old scripts).
    #[arg(
        long,
        visible_alias = "name",
        env = "CAFE_CUSTOMER",
        default_value = "guest"
    )]
    pub customer: String,

    /// Give up after this long (e.g. 3s, 500ms); sent to the café as the gRPC
    /// deadline, which then cancels the order. [default: wait as long as it takes]
    #[arg(long, env = "CAFE_DEADLINE", value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,

    /// Take a buzzer instead of waiting at the counter: the ticket comes back
    /// at once, then every change to the order.
    #[arg(long, env = "CAFE_BUZZER", default_value_t = false)]
    pub buzzer: bool,
}

/// `cafe cancel`.
#[derive(Debug, Clone, Args)]
pub struct CancelArgs {
    /// The order's id.
    pub order_id: String,

    /// The claim token printed on the order's ticket.
    #[arg(long, env = "CAFE_CLAIM_TOKEN")]
    pub claim_token: String,
}

/// How the customers of a rush wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RushMode {
    /// One after another: each waits for their drink before the next orders.
    Sequential,
    /// All at once, up to --concurrency in flight on one connection.
    Concurrent,
    /// Sequential, then concurrent, and the speed-up.
    Compare,
}

/// `cafe rush`.
#[derive(Debug, Clone, Args)]
pub struct RushArgs {
    /// How many customers order.
    #[arg(long, env = "CAFE_RUSH_CUSTOMERS", default_value_t = 6,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub customers: u16,

    /// What they all order.
    #[arg(long, env = "CAFE_RUSH_DRINK", default_value = "latte",
          value_parser = crate::drink::menu_id)]
    pub drink: String,

    /// Cup size: small, medium or large.
    #[arg(long, env = "CAFE_SIZE", default_value = "medium")]
    pub size: Size,

    /// sequential, concurrent, or compare (both, then the speed-up).
    #[arg(long, env = "CAFE_RUSH_MODE", value_enum, default_value_t = RushMode::Compare)]
    pub mode: RushMode,

    /// Most orders in flight at once in concurrent mode. [default: all customers]
    #[arg(long, env = "CAFE_RUSH_CONCURRENCY",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,

    /// Also draw the timelines as an SVG picture in this file (a slide, a
    /// README). [default: none, the terminal only]
    #[arg(long, env = "CAFE_RUSH_SVG", value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Which half of the lesson `cafe demo` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoPart {
    /// Both, the customer's half first.
    Both,
    /// How the customer waits: one after another, or all at once.
    Customer,
    /// How the barista waits: blocking a thread, or awaiting.
    Barista,
}

impl DemoPart {
    /// Whether the customer's half runs.
    pub fn customer(self) -> bool {
        matches!(self, DemoPart::Both | DemoPart::Customer)
    }

    /// Whether the barista's half runs.
    pub fn barista(self) -> bool {
        matches!(self, DemoPart::Both | DemoPart::Barista)
    }
}

/// `cafe demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How many customers come in.
    #[arg(long, env = "CAFE_DEMO_CUSTOMERS", default_value_t = 6,
          value_parser = clap::value_parser!(u16).range(1..=200))]
    pub customers: u16,

    /// How many baristas the demo café has.
    #[arg(long, env = "CAFE_DEMO_BARISTAS", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub baristas: u16,

    /// Multiplier on brew times: 0.03 makes a 40 s latte take 1.2 s.
    #[arg(long, env = "CAFE_DEMO_TIME_SCALE", default_value = "0.03")]
    pub time_scale: TimeScale,

    /// What everyone orders.
    #[arg(long, env = "CAFE_DEMO_DRINK", default_value = "latte",
          value_parser = crate::drink::menu_id)]
    pub drink: String,

    /// Which half of the lesson to run: both, customer or barista.
    #[arg(long, env = "CAFE_DEMO_PART", value_enum, default_value_t = DemoPart::Both)]
    pub part: DemoPart,

    /// Worker threads of each demo café's async runtime. The cafés run on
    /// their own runtime, apart from this CLI's, so a blocked café cannot
    /// stall the customers measuring it.
    #[arg(long, env = "CAFE_DEMO_WORKERS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,

    /// Also draw the timelines as an SVG picture in this file. [default:
    /// none, the terminal only]
    #[arg(long, env = "CAFE_DEMO_SVG", value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `cafe stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Print a line every this long (e.g. 500ms, 1s) until Ctrl-C.
    /// [default: once]
    #[arg(long, env = "CAFE_STATS_EVERY", value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
}

/// `cafe man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. demo. [default: the page of
    /// `cafe` itself, which lists the commands]
    pub command: Option<String>,
}

/// `cafe completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Which call `cafe bench` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchRpc {
    /// OrderCoffee: wait at the counter (unary).
    Counter,
    /// OrderWithBuzzer: read the stream to its end (server streaming).
    Buzzer,
    /// GetMenu: no brewing, the cost of a call alone.
    Menu,
}

impl BenchRpc {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BenchRpc::Counter => "counter",
            BenchRpc::Buzzer => "buzzer",
            BenchRpc::Menu => "menu",
        }
    }
}

/// `cafe bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The call to make: counter (OrderCoffee), buzzer (OrderWithBuzzer) or
    /// menu (GetMenu).
    #[arg(long, env = "CAFE_BENCH_RPC", value_enum, default_value_t = BenchRpc::Counter)]
    pub rpc: BenchRpc,

    /// How many calls are kept in flight: one worker task each.
    #[arg(long, short = 'c', env = "CAFE_BENCH_CONCURRENCY", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub concurrency: u32,

    /// How many HTTP/2 connections the workers share, round-robin (never
    /// more than --concurrency).
    #[arg(long, env = "CAFE_BENCH_CONNECTIONS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,

    /// Run for this long after the warm-up (e.g. 10s); calls still in
    /// flight at the end are abandoned. [default: none, --requests bounds
    /// the run]
    #[arg(long, short = 'z', env = "CAFE_BENCH_DURATION",
          value_parser = humantime::parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Send exactly this many calls after the warm-up and await them all.
    /// [default: 200, unless --duration is given]
    #[arg(long, short = 'n', env = "CAFE_BENCH_REQUESTS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Load the café this long first without counting (calls that end
    /// during it are not measured), so the line fills up to its steady
    /// state.
    #[arg(long, env = "CAFE_BENCH_WARMUP", default_value = "0s",
          value_parser = humantime::parse_duration)]
    pub warmup: Duration,

    /// Start the workers one after another, evenly over this long (at
    /// most --warmup), not all at once. A closed loop keeps the shape it
    /// starts with: customers who all order at the same instant come back
    /// together after every brew, in waves the café absorbs again and
    /// again; spread over a brew time, they order at a steady rate.
    #[arg(long, env = "CAFE_BENCH_RAMP_UP", default_value = "0s",
          value_parser = humantime::parse_duration)]
    pub ramp_up: Duration,

    /// What every customer orders (a menu id).
    #[arg(long, env = "CAFE_BENCH_DRINK", default_value = "latte",
          value_parser = crate::drink::menu_id)]
    pub drink: String,

    /// Cup size: small, medium or large.
    #[arg(long, env = "CAFE_SIZE", default_value = "medium")]
    pub size: Size,

    /// Each call's gRPC deadline (sent as grpc-timeout). [default: none,
    /// wait as long as it takes]
    #[arg(long, env = "CAFE_BENCH_TIMEOUT", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,

    /// The café's process id, to report its CPU per call and its memory
    /// (read from /proc/PID; the café must run on this machine).
    /// [default: none, only this process's own CPU is reported]
    #[arg(long, env = "CAFE_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
}

impl BenchArgs {
    /// The number of calls when neither --duration nor --requests is given.
    pub const DEFAULT_REQUESTS: u64 = 200;
}

/// `cafe health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The service to ask about: "" for the whole server, or cafe.v1.Cafe.
    #[arg(long, env = "CAFE_HEALTH_SERVICE", default_value = "")]
    pub service: String,

    /// How long to wait for a connection and an answer.
    #[arg(long, env = "CAFE_HEALTH_TIMEOUT", default_value = "2s",
          value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}
