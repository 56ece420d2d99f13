//! What a process costs, read from Linux's `/proc`: the CPU time it has
//! used and the memory it holds. `cafe bench` reads its own (is the
//! generator the bottleneck?) and, with `--server-pid`, the café's (CPU per
//! order, peak RSS).
//!
//! - `/proc/<pid>/stat` fields 14 and 15 (`utime`, `stime`): CPU time spent
//!   in user and kernel mode by every thread of the process, in clock ticks
//!   (`sysconf(_SC_CLK_TCK)`, 100 per second on Linux).
//! - `/proc/<pid>/status` `VmRSS` (resident memory now) and `VmHWM` (its
//!   high-water mark since the process started), in KiB.
//!
//! Reading a file under `/proc` costs a few microseconds and takes no lock
//! in the process read, so sampling the café every 100 ms does not disturb
//! what is measured.

use std::{fs, io, time::Duration};

/// A process to read: this one, or another by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The process calling (`/proc/self`).
    Current,
    /// Another process on this machine.
    Pid(u32),
}

impl Process {
    fn path(self, file: &str) -> String {
        match self {
            Process::Current => format!("/proc/self/{file}"),
            Process::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }

    /// CPU time used so far, user plus kernel, by all its threads.
    pub fn cpu_time(self) -> io::Result<Duration> {
        parse_cpu_time(&fs::read_to_string(self.path("stat"))?, clock_ticks())
    }

    /// Resident memory now and its high-water mark.
    pub fn memory(self) -> io::Result<Memory> {
        parse_memory(&fs::read_to_string(self.path("status"))?)
    }
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident.
    pub hwm_kib: u64,
}

/// Clock ticks per second, the unit of `utime` and `stime`.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no
    // preconditions and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // -1 means unknown; 100 is what Linux reports everywhere it runs today.
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// `utime + stime` from the text of `/proc/<pid>/stat`.
fn parse_cpu_time(stat: &str, ticks_per_second: u64) -> io::Result<Duration> {
    // Field 2 is the command name in parentheses, and it may itself hold
    // spaces or parentheses: the fields that follow start after the LAST
    // `)`. There, field 3 (state) is index 0, so utime (14) is index 11.
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .ok_or_else(|| malformed("stat"))?;
    let mut fields = after_name.split_whitespace().skip(11);
    let mut next = || -> io::Result<u64> {
        fields
            .next()
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| malformed("stat"))
    };
    let ticks = next()? + next()?;
    Ok(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second,
    ))
}

/// `VmRSS` and `VmHWM` from the text of `/proc/<pid>/status`.
fn parse_memory(status: &str) -> io::Result<Memory> {
    let kib = |key: &str| -> io::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| malformed("status"))
    };
    Ok(Memory {
        rss_kib: kib("VmRSS:")?,
        hwm_kib: kib("VmHWM:")?,
    })
}

fn malformed(file: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected /proc/<pid>/{file} format"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_last_parenthesis() {
        // A command name with a space and a parenthesis in it.
        let stat = "4242 (cafe (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 50 0 0 20 0 3 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(
            parse_cpu_time(stat, 100).unwrap(),
            Duration::from_millis(3000)
        );
        assert!(parse_cpu_time("4242 (cut", 100).is_err());
    }

    #[test]
    fn memory_reads_rss_and_its_high_water_mark() {
        let status = "Name:\tcafe-server\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(
            parse_memory(status).unwrap(),
            Memory {
                rss_kib: 10240,
                hwm_kib: 20480
            }
        );
        assert!(parse_memory("Name:\tkernel-thread\n").is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        let before = Process::Current.cpu_time().unwrap();
        // Burn a little CPU so the clock moves past a tick.
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(Process::Current.cpu_time().unwrap() >= before);
        let memory = Process::Current.memory().unwrap();
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
    }
}
