//! A small load measurement for the café, until `cafe bench` exists: starts
//! a release `cafe-server` as a child process, keeps N orders in flight over
//! a few connections, and reports orders per second against Little's law and
//! the server's CPU per order (from `/proc/<pid>/stat`).
//!
//! ```text
//! cargo build --release -p cafe-server --bin cafe-server --example load
//! target/release/examples/load --rpc counter --customers 10000 --baristas 1000 --brew 1s
//! target/release/examples/load --rpc buzzer  --customers 10000 --baristas 1000 --brew 1s
//! ```
//!
//! Little's law: with L orders in flight and each taking W, a café serves
//! L / W orders per second. Here an order takes at least one brew, and at
//! most `--baristas` brew at once, so the most it can serve is
//! min(customers, baristas) / brew. The report gives the measured rate as a
//! fraction of that: 1.00 means the café itself costs nothing noticeable.
//!
//! The generator runs in this process and shares the machine with the
//! server; its own CPU is reported too, so a run where it was the
//! bottleneck can be told apart. This is a measurement, not a test: no
//! figure is asserted anywhere.
//!
//! On a busy machine CPU time is noisy. `--callgrind FILE` runs the server
//! under valgrind's callgrind, counting instructions only during the
//! measured window, and reports instructions per order: slow (keep the
//! load small, e.g. 100 customers), but the same on a busy machine as on
//! an idle one. Open FILE with `callgrind_annotate` to see where they go.

use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use cafe_domain::proto::v1::{
    GetMenuRequest, OrderRequest, OrderStatus, Size, cafe_client::CafeClient,
};
use clap::Parser;
use tokio::time::Instant;
use tonic::transport::Channel;

/// The café's load, measured from outside.
#[derive(Debug, Parser)]
struct Args {
    /// How customers wait: `counter` (OrderCoffee) or `buzzer`
    /// (OrderWithBuzzer, read to its end).
    #[arg(long, default_value = "counter")]
    rpc: Rpc,
    /// Orders kept in flight: each customer orders again as soon as their
    /// drink is ready.
    #[arg(long, default_value_t = 1000)]
    customers: usize,
    /// The server's --baristas.
    #[arg(long, default_value_t = 1000)]
    baristas: u32,
    /// How long one brew takes (an espresso at the matching time scale).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    brew: Duration,
    /// HTTP/2 connections the customers share.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Time before measuring, for the line to fill and settle.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The server's --runtime-workers [default: its own default].
    #[arg(long)]
    server_workers: Option<u16>,
    /// The `cafe-server` binary to start [default: the one beside this
    /// example, target/release/cafe-server].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// RUST_LOG for the server (its logs go to /dev/null either way).
    #[arg(long, default_value = "info")]
    server_log: String,
    /// Run the server under callgrind, counting instructions during the
    /// measured window only, into this file.
    #[arg(long)]
    callgrind: Option<PathBuf>,
    /// Have the server export its traces over OTLP/gRPC to this endpoint
    /// (e.g. a `cafe-bench-collector` started beside it), to measure what
    /// exporting costs [default: no export].
    #[arg(long)]
    otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Rpc {
    Counter,
    Buzzer,
}

/// What every customer task counts.
#[derive(Default)]
struct Tally {
    ready: AtomicU64,
    events: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn error(&self, what: String) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_default() += 1;
    }
}

/// User and system CPU time of a process so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after = &stat[stat.rfind(')').context("no ) in stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line; 3 is the first
    // one after the name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 if unknown).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits for the server to exit (after a SIGTERM), instead of killing it.
fn server_exit(mut server: Server) -> std::io::Result<()> {
    server.0.wait()?;
    std::mem::forget(server);
    Ok(())
}

/// Kills the server when the measurement ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(args: &Args, addr: SocketAddr) -> anyhow::Result<Server> {
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .context("no target directory")?
            .join("cafe-server"),
    };
    // An espresso is 20 s at time scale 1.
    let scale = args.brew.as_secs_f64() / 20.0;
    let mut command = match &args.callgrind {
        Some(out) => {
            let mut valgrind = Command::new("valgrind");
            valgrind
                .args(["--tool=callgrind", "--instr-atstart=no"])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(&bin);
            valgrind
        }
        None => Command::new(&bin),
    };
    command
        .args(["--listen", &addr.to_string()])
        .args(["--baristas", &args.baristas.to_string()])
        .args(["--time-scale", &scale.to_string()])
        .args(["--queue-capacity", &(args.customers * 2).to_string()])
        .env("RUST_LOG", &args.server_log)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(workers) = args.server_workers {
        command.args(["--runtime-workers", &workers.to_string()]);
    }
    if let Some(endpoint) = &args.otlp_endpoint {
        command.args(["--otlp-endpoint", endpoint]);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    Ok(Server(child))
}

async fn connect(addr: SocketAddr) -> anyhow::Result<CafeClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(CafeClient::new(channel))
}

/// Turns callgrind's instruction counting on or off in the server, or
/// dumps what it counted.
fn callgrind_control(pid: u32, flag: &str) -> anyhow::Result<()> {
    let status = Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "callgrind_control {flag} failed");
    Ok(())
}

/// The instructions counted in a callgrind output file.
fn callgrind_total(out: &std::path::Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(out)?;
    // `summary:` in the header may say 0 when counting started late;
    // `totals:` at the end is what was counted.
    let total = text
        .lines()
        .find_map(|line| line.strip_prefix("totals:"))
        .context("no totals in the callgrind output")?;
    Ok(total.split_whitespace().next().unwrap_or("0").parse()?)
}

/// Waits (bounded) until the child answers GetMenu.
async fn until_open(addr: SocketAddr) -> anyhow::Result<()> {
    // Generous: under valgrind the server starts some fifty times slower.
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut client) = connect(addr).await
            && client.get_menu(GetMenuRequest {}).await.is_ok()
        {
            return Ok(());
        }
        if Instant::now() > give_up {
            bail!("the café at {addr} did not open within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One customer: orders, waits for the drink, orders again, until `stop`.
async fn customer(
    mut client: CafeClient<Channel>,
    rpc: Rpc,
    name: String,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let request = OrderRequest {
        customer: name,
        drink: "espresso".into(),
        size: Size::Medium as i32,
        request_id: String::new(),
    };
    while !stop.load(Ordering::Relaxed) {
        match rpc {
            Rpc::Counter => match client.order_coffee(request.clone()).await {
                Ok(response) => {
                    let ready = response.into_inner().order.map(|o| o.status)
                        == Some(OrderStatus::Ready as i32);
                    if ready {
                        tally.ready.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.error("not ready".into());
                    }
                }
                Err(status) => tally.error(format!("{:?}", status.code())),
            },
            Rpc::Buzzer => match client.order_with_buzzer(request.clone()).await {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    let mut last = None;
                    let outcome = loop {
                        match stream.message().await {
                            Ok(Some(event)) => {
                                tally.events.fetch_add(1, Ordering::Relaxed);
                                last = event.order.map(|o| o.status);
                            }
                            Ok(None) => break Ok(last),
                            Err(status) => break Err(status),
                        }
                    };
                    match outcome {
                        Ok(Some(status)) if status == OrderStatus::Ready as i32 => {
                            tally.ready.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => tally.error("ended not ready".into()),
                        Err(status) => tally.error(format!("{:?}", status.code())),
                    }
                }
                Err(status) => tally.error(format!("{:?}", status.code())),
            },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let addr = free_port()?;
    let server = start_server(&args, addr)?;
    let pid = server.0.id();
    until_open(addr).await?;

    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        clients.push(connect(addr).await?);
    }
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut customers = tokio::task::JoinSet::new();
    for i in 0..args.customers {
        customers.spawn(customer(
            clients[i % clients.len()].clone(),
            args.rpc,
            format!("customer {i}"),
            Arc::clone(&tally),
            Arc::clone(&stop),
        ));
    }

    tokio::time::sleep(args.warmup).await;
    let (ready0, events0) = (
        tally.ready.load(Ordering::Relaxed),
        tally.events.load(Ordering::Relaxed),
    );
    let (server0, own0) = (cpu_time(pid)?, cpu_time(std::process::id())?);
    if args.callgrind.is_some() {
        callgrind_control(pid, "--instr=on")?;
    }
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    let elapsed = started.elapsed();
    let (server1, own1) = (cpu_time(pid)?, cpu_time(std::process::id())?);
    let ready = tally.ready.load(Ordering::Relaxed) - ready0;
    let events = tally.events.load(Ordering::Relaxed) - events0;
    if args.callgrind.is_some() {
        callgrind_control(pid, "--instr=off")?;
    }
    stop.store(true, Ordering::Relaxed);

    let rate = ready as f64 / elapsed.as_secs_f64();
    let bound = args.customers.min(args.baristas as usize) as f64 / args.brew.as_secs_f64();
    let per_order = |cpu: Duration| {
        if ready == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / ready as f64
        }
    };
    println!(
        "{:?}: {} customers, {} baristas, {:?} brew, {} connections",
        args.rpc, args.customers, args.baristas, args.brew, args.connections
    );
    println!(
        "  {rate:.0} orders/s = {:.3} of Little's law ({bound:.0}/s), {ready} orders in {elapsed:.1?}",
        rate / bound
    );
    println!(
        "  server CPU {:.0} µs/order ({:.2} cores), generator CPU {:.0} µs/order ({:.2} cores)",
        per_order(server1 - server0),
        (server1 - server0).as_secs_f64() / elapsed.as_secs_f64(),
        per_order(own1 - own0),
        (own1 - own0).as_secs_f64() / elapsed.as_secs_f64(),
    );
    if matches!(args.rpc, Rpc::Buzzer) && ready > 0 {
        println!(
            "  {:.1} buzzer events per order",
            events as f64 / ready as f64
        );
    }
    println!("  server peak RSS {} KiB", peak_rss_kib(pid));
    if let Some(out) = &args.callgrind {
        // Written when the server exits: SIGTERM lets valgrind finish it.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let _ = server_exit(server);
        let instructions = callgrind_total(out)?;
        println!(
            "  server instructions (callgrind) {:.0} per order, {instructions} in all",
            instructions as f64 / ready.max(1) as f64
        );
        std::process::exit(0);
    }
    let errors = tally.errors.lock().unwrap_or_else(|p| p.into_inner());
    if !errors.is_empty() {
        println!("  errors (whole run): {errors:?}");
    }
    drop(server);
    // The customer tasks are still waiting on a server that is gone; the
    // report is out, so leave without waiting for them.
    std::process::exit(0)
}
