//! `cafe bench`: a load generator in the style of ghz, to measure what the
//! café does with many customers, and what each one costs it.
//!
//! The shape of the load is what makes a measurement honest:
//!
//! - **A fixed pool of workers, one call in flight each** (`worker`):
//!   `--concurrency N` orders in flight all the time, which is the `L` of
//!   Little's law (`L = λ·W`). The generator must stay far from being the
//!   bottleneck, and it reports its own CPU so a reader can check that.
//! - **Results by gRPC status.** See [`tally`]: HTTP 200 is not success.
//! - **A warm-up, then a window.** A café that starts empty is not in its
//!   steady state until the line has filled; calls that end during
//!   `--warmup` are not measured, and the CPU and memory readings are taken
//!   at the window's edges.
//! - **Untraced connections of its own.** The other commands wrap their
//!   channel in the tracing layer; a span per call here would measure the
//!   generator's tracing, not the café.
//! - **A well-behaved client.** After `UNAVAILABLE` a worker waits before
//!   its next call: as long as the café's retry hint says, or an
//!   exponential backoff (see [`backoff`]). A worker that sent again at
//!   once would make errors of its own while a café closes.
//!
//! [`procfs`] reads the CPU and memory of this process and of the café
//! (`--server-pid`); [`report`] is what a run measured.

pub mod backoff;
pub mod procfs;
pub mod report;
pub mod tally;
mod worker;

use std::{
    future::Future,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use cafe_domain::{
    menu::Size,
    proto::v1::{self as pb, OrderRequest, cafe_client::CafeClient},
};
use tokio::{task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use self::report::{Report, ServerUsage, Usage, table};
use self::{
    backoff::Backoff,
    procfs::{Memory, Process},
    tally::Tally,
    worker::{Shared, worker},
};
use super::{Finished, ctrl_c};
use crate::{
    cli::{BenchArgs, BenchRpc},
    connection::{self, CONNECT_TIMEOUT, Dial},
    error::ClientError,
    output::{Output, millis},
};

/// What bounds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Measure for this long after the warm-up, then abandon what is still
    /// in flight.
    Duration(Duration),
    /// Send exactly this many calls after the warm-up and await them all.
    Requests(u64),
}

/// One run of the generator.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The call to make.
    pub rpc: BenchRpc,
    /// Calls kept in flight (worker tasks).
    pub concurrency: usize,
    /// HTTP/2 connections, shared round-robin by the workers.
    pub connections: usize,
    /// When the run ends.
    pub bound: Bound,
    /// Unmeasured time before the window.
    pub warmup: Duration,
    /// The workers start evenly over this long (never past the warm-up).
    pub ramp_up: Duration,
    /// The drink ordered.
    pub drink: String,
    /// Its size.
    pub size: Size,
    /// Each call's deadline.
    pub timeout: Option<Duration>,
    /// The café's process, to read its CPU and memory.
    pub server_pid: Option<u32>,
}

impl Plan {
    /// The plan for `cafe bench` with `args`.
    pub fn from_args(args: &BenchArgs) -> Self {
        let concurrency = args.concurrency as usize;
        Plan {
            rpc: args.rpc,
            concurrency,
            connections: (args.connections as usize).min(concurrency),
            bound: match (args.duration, args.requests) {
                (Some(duration), _) => Bound::Duration(duration),
                (None, requests) => {
                    Bound::Requests(requests.unwrap_or(BenchArgs::DEFAULT_REQUESTS))
                }
            },
            warmup: args.warmup,
            ramp_up: args.ramp_up.min(args.warmup),
            drink: args.drink.clone(),
            size: args.size,
            timeout: args.timeout,
            server_pid: args.server_pid,
        }
    }
}

/// CPU and memory at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    own_cpu: Duration,
    server_cpu: Option<Duration>,
    server_memory: Option<Memory>,
}

impl Snapshot {
    fn take(server: Option<Process>) -> Self {
        Snapshot {
            at: Instant::now(),
            own_cpu: Process::Current.cpu_time().unwrap_or_default(),
            // The café may have died mid-run; its calls then fail, which the
            // results show. Its readings are simply missing.
            server_cpu: server.and_then(|process| process.cpu_time().ok()),
            server_memory: server.and_then(|process| process.memory().ok()),
        }
    }
}

/// Connects `connections` HTTP/2 connections to the café `dial` names, all
/// at once (over TLS for `https://`).
async fn connect_all(dial: &Dial, connections: usize) -> Result<Vec<Channel>, ClientError> {
    let url = &dial.url();
    let endpoint = connection::endpoint(dial, CONNECT_TIMEOUT)?;
    let mut dialing = JoinSet::new();
    for _ in 0..connections {
        // Each `connect` opens its own TCP connection (a clone of one
        // channel would share it).
        let endpoint = endpoint.clone();
        dialing
            .spawn(async move { tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await });
    }
    let mut channels = Vec::with_capacity(connections);
    while let Some(dialed) = dialing.join_next().await {
        match dialed.expect("connecting does not panic") {
            Ok(Ok(channel)) => channels.push(channel),
            Ok(Err(error)) => return Err(connection::connect_failure(url, &error)),
            Err(_) => return Err(ClientError::NoCafe { url: url.into() }),
        }
    }
    Ok(channels)
}

/// Runs one benchmark against the café `dial` names and returns its
/// report. Stops early (with `interrupted` set) when `interrupt` resolves.
pub async fn bench(
    dial: &Dial,
    plan: &Plan,
    interrupt: impl Future<Output = ()>,
) -> Result<Report, ClientError> {
    let url = dial.url();
    let server = plan.server_pid.map(Process::Pid);
    // Read the café once before anything else: a wrong pid is a usage
    // error now, not a column of blanks at the end.
    let server_before = match (plan.server_pid, server) {
        (Some(pid), Some(process)) => {
            Some(
                process
                    .memory()
                    .map_err(|error| ClientError::NoSuchProcess {
                        pid,
                        detail: error.to_string(),
                    })?,
            )
        }
        _ => None,
    };
    let concurrency = plan.concurrency.max(1);
    let channels = connect_all(dial, plan.connections.clamp(1, concurrency)).await?;

    let shard_count = std::thread::available_parallelism()
        .map_or(4, |cores| cores.get() * 4)
        .min(concurrency);
    let start = Instant::now();
    let warmup_end = start + plan.warmup;
    let shared = Arc::new(Shared {
        rpc: plan.rpc,
        request: OrderRequest {
            customer: "bench".into(),
            drink: plan.drink.clone(),
            size: pb::Size::from(plan.size) as i32,
            request_id: String::new(),
        },
        timeout: plan.timeout,
        warmup_end,
        window_end: match plan.bound {
            Bound::Duration(duration) => Some(warmup_end + duration),
            Bound::Requests(_) => None,
        },
        started: AtomicU64::new(0),
        planned: match plan.bound {
            Bound::Requests(requests) => Some(requests),
            Bound::Duration(_) => None,
        },
        stop: CancellationToken::new(),
        shards: (0..shard_count).map(|_| Mutex::default()).collect(),
    });

    // The pool: `concurrency` tasks for the whole run, round-robin over the
    // connections. A client clone is a handle onto its connection, not a
    // new socket; each call is one HTTP/2 stream on it.
    // With --ramp-up, worker `index` makes its first call `index / N` of
    // the way through it.
    let mut workers = JoinSet::new();
    for index in 0..concurrency {
        let cafe = CafeClient::new(channels[index % channels.len()].clone());
        let first_call = start + plan.ramp_up.mul_f64(index as f64 / concurrency as f64);
        workers.spawn(worker(
            cafe,
            Arc::clone(&shared),
            index % shard_count,
            Backoff::new(index),
            first_call,
        ));
    }

    let mut peak_rss = server_before.map_or(0, |memory| memory.rss_kib);
    let mut window_start = (plan.warmup.is_zero()).then(|| Snapshot::take(server));
    let mut window_stop: Option<Snapshot> = None;
    let mut interrupted = false;
    let mut sampling = tokio::time::interval(Duration::from_millis(100));
    sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            // Ctrl-C first, so a flood of finishing workers cannot hide it.
            biased;
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                window_stop.get_or_insert_with(|| Snapshot::take(server));
                shared.stop.cancel();
            }
            () = tokio::time::sleep_until(warmup_end), if window_start.is_none() => {
                window_start = Some(Snapshot::take(server));
            }
            // With --duration: the readings at the window's end are taken
            // BEFORE the workers are stopped, so cancelling thousands of
            // calls is not billed to the window.
            () = tokio::time::sleep_until(shared.window_end.unwrap_or(warmup_end)),
                if shared.window_end.is_some() && window_start.is_some() && window_stop.is_none() => {
                window_stop = Some(Snapshot::take(server));
                shared.stop.cancel();
            }
            joined = workers.join_next() => match joined {
                Some(Ok(())) => {}
                Some(Err(error)) => std::panic::resume_unwind(error.into_panic()),
                None => break,
            },
            _ = sampling.tick(), if server.is_some() => {
                if let Some(memory) = server.and_then(|process| process.memory().ok()) {
                    peak_rss = peak_rss.max(memory.rss_kib);
                }
            }
        }
    }
    let window_stop = window_stop.unwrap_or_else(|| Snapshot::take(server));
    let window_start = window_start.unwrap_or(window_stop);

    let mut tally = Tally::default();
    for shard in &shared.shards {
        tally.merge(&shard.lock().unwrap_or_else(|p| p.into_inner()));
    }
    // The window the calls were counted in: from the warm-up's end to the
    // window's end (or to the last call, or to Ctrl-C). The readings are
    // taken by a timer a little after each edge; CPU is divided by the time
    // between the readings, calls by the window they were counted in.
    let window_end = shared
        .window_end
        .map_or(window_stop.at, |end| end.min(window_stop.at));
    let window = window_end.saturating_duration_since(warmup_end);
    let sampled = window_stop.at.saturating_duration_since(window_start.at);
    let requests = tally.requests();
    let usage = |cpu: Duration, memory: Memory| Usage {
        cpu_ms: millis(cpu),
        cpu_cores: ratio(cpu.as_secs_f64(), sampled.as_secs_f64()),
        cpu_per_call_us: (requests > 0)
            .then(|| (cpu.as_secs_f64() * 1e6 / requests as f64 * 10.0).round() / 10.0),
        rss_kib: memory.rss_kib,
        hwm_kib: memory.hwm_kib,
    };
    let own_memory = Process::Current.memory().unwrap_or_default();
    let server_process = match (plan.server_pid, server_before) {
        (Some(pid), Some(before)) => {
            let end = window_stop.server_memory.unwrap_or_default();
            // The high-water mark is read now, after the run, so it covers
            // every peak, even one between two samples.
            let hwm = server
                .and_then(|process| process.memory().ok())
                .map_or(end.hwm_kib, |memory| memory.hwm_kib);
            let cpu = window_stop
                .server_cpu
                .zip(window_start.server_cpu)
                .map_or(Duration::ZERO, |(stop, start)| stop.saturating_sub(start));
            Some(ServerUsage {
                pid,
                usage: usage(
                    cpu,
                    Memory {
                        rss_kib: end.rss_kib,
                        hwm_kib: hwm,
                    },
                ),
                rss_before_kib: before.rss_kib,
                rss_peak_kib: peak_rss
                    .max(end.rss_kib)
                    .max(window_start.server_memory.map_or(0, |m| m.rss_kib)),
            })
        }
        _ => None,
    };
    Ok(Report {
        rpc: plan.rpc.as_str(),
        server: url,
        drink: plan.drink.clone(),
        size: plan.size.as_str(),
        concurrency,
        connections: channels.len(),
        duration_ms: match plan.bound {
            Bound::Duration(duration) => Some(millis(duration)),
            Bound::Requests(_) => None,
        },
        requests_planned: match plan.bound {
            Bound::Requests(requests) => Some(requests),
            Bound::Duration(_) => None,
        },
        warmup_ms: millis(plan.warmup),
        ramp_up_ms: millis(plan.ramp_up),
        window_ms: millis(window),
        requests,
        ok: tally.ok(),
        errors: requests - tally.ok(),
        results: tally.results(),
        retry_hints: tally.hinted,
        warmup_calls: tally.warmup,
        abandoned: tally.abandoned,
        throughput_per_s: ratio(tally.ok() as f64, window.as_secs_f64()),
        calls_per_s: ratio(requests as f64, window.as_secs_f64()),
        latency: tally.latency(),
        generator: usage(
            window_stop.own_cpu.saturating_sub(window_start.own_cpu),
            own_memory,
        ),
        server_process,
        interrupted,
    })
}

/// `a / b` to 3 decimals, 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (a / b * 1e3).round() / 1e3
    } else {
        0.0
    }
}

/// Runs `cafe bench` and prints its report: a short table, or one JSON
/// object with `--json`.
pub async fn run(dial: &Dial, out: &Output, args: &BenchArgs) -> Result<Finished, ClientError> {
    let plan = Plan::from_args(args);
    let spinner = out.spinner(format!(
        "{} {} in flight against {}…",
        plan.rpc.as_str(),
        plan.concurrency,
        dial.url()
    ));
    let report = bench(dial, &plan, ctrl_c()).await;
    out.clear_spinner(&spinner);
    let report = report?;
    for line in table(&report) {
        out.line(line)?;
    }
    out.json("bench", &report)?;
    Ok(if report.interrupted {
        Finished::Interrupted
    } else {
        Finished::Done
    })
}
