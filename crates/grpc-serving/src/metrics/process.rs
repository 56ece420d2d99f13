//! What every server reports alike, read when scraped: its tokio runtime
//! (tasks alive, workers, the global queue), its process (resident memory,
//! open file descriptors) and the spans its telemetry failed to deliver.
//!
//! Tasks alive is the leak detector: every call being served, every buzzer
//! and board stream, every barista waiting for work is a task, so a number
//! that keeps growing while the load does not is work nobody will finish.
//! It is tokio's stable `RuntimeMetrics::num_alive_tasks` (no
//! `--cfg tokio_unstable` needed), the same that `GetStats` reports.

use std::fmt;

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use tokio::runtime::RuntimeMetrics;

use super::{counter, gauge};

/// Reads the runtime it was made in, the process, and telemetry.
#[derive(Debug)]
pub struct ProcessCollector {
    runtime: Option<RuntimeMetrics>,
}

impl ProcessCollector {
    /// For the runtime this is called in (none outside a runtime: then only
    /// the process's numbers are reported).
    pub fn current() -> Self {
        ProcessCollector {
            runtime: tokio::runtime::Handle::try_current()
                .ok()
                .map(|runtime| runtime.metrics()),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        if let Some(runtime) = &self.runtime {
            gauge(
                &mut encoder,
                "tokio_alive_tasks",
                "Tasks alive in the server's tokio runtime: calls being served, streams, baristas, background work.",
                runtime.num_alive_tasks() as u64,
            )?;
            gauge(
                &mut encoder,
                "tokio_workers",
                "Worker threads of the server's tokio runtime (--runtime-workers).",
                runtime.num_workers() as u64,
            )?;
            gauge(
                &mut encoder,
                "tokio_global_queue_depth",
                "Tasks woken and waiting in the runtime's global queue for a worker thread.",
                runtime.global_queue_depth() as u64,
            )?;
        }
        counter(
            &mut encoder,
            "trace_spans_dropped",
            "Spans this process failed to export (queue full or export failed).",
            None,
            [("", grpc_telemetry::spans_dropped())],
        )?;
        if let Some(bytes) = resident_memory_bytes() {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory of the process, in bytes.",
                bytes,
            )?;
        }
        if let Some(open) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors of the process: sockets (connections) and files.",
                open,
            )?;
        }
        Ok(())
    }
}

/// `VmRSS` from `/proc/self/status` (Linux; `None` elsewhere).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The entries of `/proc/self/fd` (Linux; `None` elsewhere), less the one
/// reading it.
fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_is_measured() {
        assert!(resident_memory_bytes().unwrap() > 0);
        // stdin, stdout, stderr at least.
        assert!(open_fds().unwrap() >= 3);
    }
}
