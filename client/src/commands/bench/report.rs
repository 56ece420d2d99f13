//! What a `cafe bench` run measured: the report `--json` prints, and the
//! short table people read.

use std::time::Duration;

use serde::Serialize;

use super::tally::Latency;
use crate::output::human;

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

/// The result of a run; `--json` prints it as one `bench` event.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
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
    /// `--ramp-up`: the workers' first calls spread over it (0: all at once).
    pub ramp_up_ms: f64,
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
