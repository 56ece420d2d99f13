//! `cafe bench`: a load generator in the style of ghz, to measure what the
//! café does with many customers, and what each one costs it.
//!
//! The shape of the load is what makes a measurement honest:
//!
//! - **A fixed pool of workers, one call in flight each.** `--concurrency N`
//!   spawns N tasks, and each sends its next call as soon as the last one
//!   ends: exactly N orders are in flight all the time, which is the `L` of
//!   Little's law (`L = λ·W`: in flight = throughput × time in the café).
//!   No task is spawned per request and nothing is collected per request
//!   but a few counters: at 10,000 in flight the generator must stay far
//!   from being the bottleneck, and it reports its own CPU so a reader can
//!   check that it was.
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
//! (`--server-pid`); [`tally`] counts.

pub mod backoff;
pub mod procfs;
pub mod tally;

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cafe_domain::{
    menu::Size,
    proto::v1::{self as pb, GetMenuRequest, OrderRequest, cafe_client::CafeClient},
};
use serde::Serialize;
use tokio::{task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Status, transport::Channel};

use self::{
    backoff::Backoff,
    procfs::{Memory, Process},
    tally::{Latency, Outcome, Tally},
};
use super::{Finished, ctrl_c};
use crate::{
    cli::{BenchArgs, BenchRpc},
    connection::{self, CONNECT_TIMEOUT, Dial},
    error::ClientError,
    output::{Output, human, millis},
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
            drink: args.drink.clone(),
            size: args.size,
            timeout: args.timeout,
            server_pid: args.server_pid,
        }
    }
}

/// What a process spent during the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// CPU time, user plus kernel, all threads.
    pub cpu_ms: f64,
    /// That CPU time over the window: 1.0 is one core kept busy.
    pub cpu_cores: f64,
    /// CPU time per measured call, in µs (none when nothing was measured).
    pub cpu_per_call_us: Option<f64>,
    /// Resident memory at the end of the window, in KiB.
    pub rss_kib: u64,
    /// The highest resident memory of the process's life (`VmHWM`), in KiB.
    pub hwm_kib: u64,
}

/// The café's side, read from `/proc/<server-pid>`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    /// Its pid.
    pub pid: u32,
    /// CPU and memory over the window.
    #[serde(flatten)]
    pub usage: Usage,
    /// Resident memory before the first call, in KiB.
    pub rss_before_kib: u64,
    /// The most resident memory seen during the run (sampled every 100 ms
    /// and at the window's edges), in KiB.
    pub rss_peak_kib: u64,
}

/// The result of a run; `--json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always `bench`.
    pub kind: &'static str,
    /// `counter`, `buzzer` or `menu`.
    pub rpc: &'static str,
    /// The café's address.
    pub server: String,
    /// The drink ordered (not used by `menu`).
    pub drink: String,
    /// Its size.
    pub size: &'static str,
    /// Calls kept in flight.
    pub concurrency: usize,
    /// HTTP/2 connections.
    pub connections: usize,
    /// `--duration`, when it bounded the run.
    pub duration_ms: Option<f64>,
    /// `--requests`, when it bounded the run.
    pub requests_planned: Option<u64>,
    /// `--warmup`.
    pub warmup_ms: f64,
    /// The measured window: from the end of the warm-up to the end of the
    /// run (the last call, with `--requests`).
    pub window_ms: f64,
    /// Measured calls: `ok + errors`.
    pub requests: u64,
    /// Measured calls that succeeded (drink READY).
    pub ok: u64,
    /// Measured calls that did not.
    pub errors: u64,
    /// Measured calls by outcome: a gRPC code, or `OK_BUT_<status>` for an
    /// order that ended OK without a drink.
    pub results: std::collections::BTreeMap<&'static str, u64>,
    /// Measured `UNAVAILABLE` calls whose answer carried a retry hint (a
    /// café closing); each worker waited as long as it said.
    pub retry_hints: u64,
    /// Calls that ended during the warm-up (not measured).
    pub warmup_calls: u64,
    /// Calls in flight when the window ended (cancelled, or ended after
    /// it) or when Ctrl-C stopped the run: not measured.
    pub abandoned: u64,
    /// Successful calls per second of the window: orders served per second.
    pub throughput_per_s: f64,
    /// Measured calls per second, whatever their outcome.
    pub calls_per_s: f64,
    /// Latency percentiles of the successful calls.
    pub latency: Option<Latency>,
    /// What the generator itself spent.
    pub generator: Usage,
    /// What the café spent, with `--server-pid`.
    pub server_process: Option<ServerUsage>,
    /// Ctrl-C stopped the run early.
    pub interrupted: bool,
}

/// Everything the workers share. Owned by an `Arc`: the run and each
/// worker hold one, and it is dropped when the last worker ends.
struct Shared {
    rpc: BenchRpc,
    /// Built once and cloned per call (tonic takes each request by value).
    request: OrderRequest,
    timeout: Option<Duration>,
    warmup_end: Instant,
    /// With `--duration`: the window's end.
    window_end: Option<Instant>,
    /// With `--requests`: how many calls have been started after the
    /// warm-up, and the most there may be.
    started: AtomicU64,
    planned: Option<u64>,
    /// Cancelled at the window's end, or on Ctrl-C: every worker stops,
    /// dropping its call in flight (which resets its HTTP/2 stream, so the
    /// café cancels the order).
    stop: CancellationToken,
    /// Counts, sharded so that the workers rarely meet on one lock.
    shards: Vec<Mutex<Tally>>,
}

impl Shared {
    fn tally(&self, shard: usize) -> std::sync::MutexGuard<'_, Tally> {
        // A worker that panicked mid-record leaves counts that are still
        // counts; keep them.
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `message` as a request, with the `--timeout` deadline if any.
    fn with_deadline<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        request
    }
}

/// One worker: one call after another on its own handle to a shared
/// connection, until the run says stop. Returns nothing; what it saw is in
/// its shard.
async fn worker(
    mut cafe: CafeClient<Channel>,
    shared: Arc<Shared>,
    shard: usize,
    mut backoff: Backoff,
) {
    // Made once and polled again at every call: one registration with the
    // token for the worker's whole life, not one per call.
    let stopped = shared.stop.cancelled();
    tokio::pin!(stopped);
    // How long to wait before the next call, after an `UNAVAILABLE`.
    let mut wait: Option<Duration> = None;
    loop {
        if let Some(wait) = wait.take() {
            // The stop ends the wait too: a worker backing off is not a
            // call in flight, so nothing is abandoned.
            tokio::select! {
                biased;
                () = &mut stopped => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if shared.stop.is_cancelled() {
            return;
        }
        let started = Instant::now();
        // With --duration, no call starts after the window: it could only
        // be abandoned.
        if shared
            .window_end
            .is_some_and(|window_end| started >= window_end)
        {
            return;
        }
        // With --requests, a call started after the warm-up takes a ticket;
        // when they are all taken this worker is done.
        let ticketed = match shared.planned {
            Some(planned) if started >= shared.warmup_end => {
                if shared.started.fetch_add(1, Ordering::Relaxed) >= planned {
                    return;
                }
                true
            }
            _ => false,
        };
        let (outcome, failure) = tokio::select! {
            // The stop first: once the window is over, a call that happens
            // to end in the same instant is abandoned, not counted late.
            biased;
            () = &mut stopped => {
                shared.tally(shard).abandoned += 1;
                return;
            }
            ended = call(&mut cafe, &shared) => ended,
        };
        let ended = Instant::now();
        let hinted = failure.as_ref().is_some_and(|status| {
            status.code() == Code::Unavailable && backoff::retry_hint(status).is_some()
        });
        wait = backoff.after(failure.as_ref());
        let measured = match shared.window_end {
            Some(window_end) => ended >= shared.warmup_end && ended < window_end,
            None => ticketed,
        };
        let mut tally = shared.tally(shard);
        if measured {
            tally.record(outcome, ended - started);
            tally.hinted += u64::from(hinted);
        } else if shared
            .window_end
            .is_some_and(|window_end| ended >= window_end)
        {
            // Ended between the window's end and the stop reaching this
            // worker: it was in flight at the end, like the cancelled ones.
            tally.abandoned += 1;
        } else {
            tally.warmup += 1;
        }
    }
}

/// Makes one call and says how it ended, with the failed call's status
/// (the worker reads its retry hint).
async fn call(cafe: &mut CafeClient<Channel>, shared: &Shared) -> (Outcome, Option<Status>) {
    let failed = |status: Status| (Outcome::Status(status.code()), Some(status));
    let calling = async {
        match shared.rpc {
            BenchRpc::Counter => match cafe
                .order_coffee(shared.with_deadline(shared.request.clone()))
                .await
            {
                Ok(response) => (
                    Outcome::of_order(response.into_inner().order.map_or(0, |order| order.status)),
                    None,
                ),
                Err(status) => failed(status),
            },
            BenchRpc::Buzzer => {
                let mut buzzer = match cafe
                    .order_with_buzzer(shared.with_deadline(shared.request.clone()))
                    .await
                {
                    Ok(response) => response.into_inner(),
                    Err(status) => return failed(status),
                };
                // Read every event; only the last one's status matters,
                // and only if the stream then ends OK.
                let mut last = pb::OrderStatus::Unspecified as i32;
                loop {
                    match buzzer.message().await {
                        Ok(Some(event)) => {
                            last = event.order.map_or(last, |order| order.status);
                        }
                        Ok(None) => return (Outcome::of_order(last), None),
                        Err(status) => return failed(status),
                    }
                }
            }
            BenchRpc::Menu => match cafe.get_menu(shared.with_deadline(GetMenuRequest {})).await {
                Ok(_) => (Outcome::Status(Code::Ok), None),
                Err(status) => failed(status),
            },
        }
    };
    match shared.timeout {
        // tonic's client sends the deadline as `grpc-timeout` but does not
        // itself stop waiting; a café that ignores it must not hang the run.
        Some(timeout) => tokio::time::timeout(timeout, calling)
            .await
            .unwrap_or((Outcome::Status(Code::DeadlineExceeded), None)),
        None => calling.await,
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
    let mut workers = JoinSet::new();
    for index in 0..concurrency {
        let cafe = CafeClient::new(channels[index % channels.len()].clone());
        workers.spawn(worker(
            cafe,
            Arc::clone(&shared),
            index % shard_count,
            Backoff::new(index),
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
        kind: "bench",
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
    out.json(&report)?;
    Ok(if report.interrupted {
        Finished::Interrupted
    } else {
        Finished::Done
    })
}

/// The report as a short table, for people.
pub fn table(report: &Report) -> Vec<String> {
    let call = match report.rpc {
        "menu" => "GetMenu".to_owned(),
        "buzzer" => format!("OrderWithBuzzer {} {}", report.size, report.drink),
        _ => format!("OrderCoffee {} {}", report.size, report.drink),
    };
    let bound = match (report.duration_ms, report.requests_planned) {
        (Some(ms), _) => format!("for {}", human(Duration::from_secs_f64(ms / 1e3))),
        (None, Some(requests)) => format!("{} calls", thousands(requests)),
        (None, None) => String::new(),
    };
    let warmup = if report.warmup_ms > 0.0 {
        format!(
            " after a {} warm-up",
            human(Duration::from_secs_f64(report.warmup_ms / 1e3))
        )
    } else {
        String::new()
    };
    let connections = match report.connections {
        1 => "1 connection".to_owned(),
        n => format!("{n} connections"),
    };
    let mut lines = vec![format!(
        "{call}: {} in flight on {connections}, {bound}{warmup}{}",
        thousands(report.concurrency as u64),
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    )];
    let row = |label: &str, value: String| format!("  {label:<11} {value}");
    // OK first, then the failures in the order of their codes' names.
    let results: Vec<String> = report
        .results
        .iter()
        .filter(|&(&name, _)| name == "OK")
        .chain(report.results.iter().filter(|&(&name, _)| name != "OK"))
        .map(|(name, count)| format!("{name} {}", thousands(*count)))
        .collect();
    lines.push(row(
        "results",
        if results.is_empty() {
            "none measured".into()
        } else {
            results.join(" · ")
        },
    ));
    if report.retry_hints > 0 {
        lines.push(row(
            "retry hints",
            format!(
                "{} UNAVAILABLE said when to come back; the workers waited that long",
                thousands(report.retry_hints)
            ),
        ));
    }
    if report.warmup_calls + report.abandoned > 0 {
        lines.push(row(
            "not counted",
            format!(
                "{} ended in the warm-up · {} abandoned at the end",
                thousands(report.warmup_calls),
                thousands(report.abandoned)
            ),
        ));
    }
    let window = Duration::from_secs_f64(report.window_ms / 1e3);
    lines.push(row(
        "throughput",
        format!(
            "{:.1} ok/s ({} ok in {}; {:.1} calls/s)",
            report.throughput_per_s,
            thousands(report.ok),
            human(window),
            report.calls_per_s
        ),
    ));
    let ms = |ms: f64| short(ms * 1e3);
    lines.push(row(
        "latency",
        match &report.latency {
            Some(l) => format!(
                "p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.p999_ms),
                ms(l.max_ms)
            ),
            None => "none (no call succeeded)".into(),
        },
    ));
    lines.push(row("generator", usage_line(&report.generator)));
    if let Some(server) = &report.server_process {
        lines.push(row(
            "café",
            format!(
                "{} · RSS {} before, {} at peak",
                usage_line(&server.usage),
                kib(server.rss_before_kib),
                kib(server.rss_peak_kib)
            ),
        ));
    }
    lines
}

fn usage_line(usage: &Usage) -> String {
    let per_call = usage
        .cpu_per_call_us
        .map_or(String::new(), |us| format!(" · {} per call", short(us)));
    format!(
        "CPU {} = {:.2} cores{per_call} · peak RSS {}",
        human(Duration::from_secs_f64(usage.cpu_ms / 1e3)),
        usage.cpu_cores,
        kib(usage.hwm_kib)
    )
}

/// A duration given in µs, in the unit that reads best down to a
/// microsecond: `126µs`, `4.3ms`, `10.1s`.
fn short(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else {
        human(Duration::from_secs_f64(us / 1e6))
    }
}

fn kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
    }

    #[test]
    fn short_durations_keep_their_microseconds() {
        assert_eq!(short(126.4), "126µs");
        assert_eq!(short(4_321.0), "4.3ms");
        assert_eq!(short(10_123_000.0), "10.1s");
    }
}
