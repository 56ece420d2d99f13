//! Servers run as real processes: the binary a user runs, started with its
//! own flags on `127.0.0.1:0`, read through its JSON log, and stopped the
//! ways a machine stops it (SIGTERM, `kill -9`). For the tests that a
//! server in the test's own process cannot stand in for: crashes,
//! restarts on the same files, signals.
//!
//! A [`SmallDisk`] is a tmpfs of a few MiB mounted for one test, so a test
//! can fill the disk under a running café and empty it again.

use std::{
    fs::File,
    io::{ErrorKind, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Mutex, mpsc},
    time::{Duration, Instant},
};

use cafe_domain::proto::v1::cafe_client::CafeClient;
use serde_json::Value;
use tonic::transport::Channel;

use crate::{LIMIT, child_log, connect, leaky_env};

/// A café (or other server) process and its JSON log.
pub struct ServerProcess {
    child: Child,
    lines: mpsc::Receiver<Value>,
    /// What it logged before its "open" line (a server opens its store
    /// first, and says what it found there), for [`ServerProcess::wait_for_log`].
    before_open: Mutex<Vec<Value>>,
    /// Where it listens, as its "open" log line says.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `binary` with `args` (plus `--listen 127.0.0.1:0` and JSON
    /// logs at `info`), with none of this process's `CAFE_*`/`OTEL_*`
    /// settings, and waits until its log says `open` (e.g. "café open").
    pub fn start(binary: &str, args: &[&str], open: &str) -> ServerProcess {
        Self::start_with_env(binary, args, &[], open)
    }

    /// Like [`ServerProcess::start`], with `env` set on top (a `RUST_LOG`
    /// of its own, an `OTEL_*` setting the test is about).
    pub fn start_with_env(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
        open: &str,
    ) -> ServerProcess {
        let mut command = clean_command(binary);
        command.env("RUST_LOG", "info").envs(env.iter().copied());
        Self::start_command(command, binary, args, open)
    }

    /// Like [`ServerProcess::start`], run as the user and group `uid` (the
    /// test must be root): for what only an unprivileged user meets, such
    /// as a file it may not write.
    #[cfg(unix)]
    pub fn start_as(binary: &str, args: &[&str], uid: u32, open: &str) -> ServerProcess {
        use std::os::unix::process::CommandExt;
        let mut command = clean_command(binary);
        command.env("RUST_LOG", "info").uid(uid).gid(uid);
        Self::start_command(command, binary, args, open)
    }

    /// Starts `command` (the `binary`, its environment set) with `args`,
    /// as [`ServerProcess::start`] says.
    fn start_command(
        mut command: Command,
        binary: &str,
        args: &[&str],
        open: &str,
    ) -> ServerProcess {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start {binary}: {error}"));
        let lines = child_log::json_lines(child.stderr.take().expect("piped"));
        let deadline = Instant::now() + LIMIT;
        let mut before_open = Vec::new();
        let line = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line {open:?} from {binary}"));
            if line["fields"]["message"] == open {
                break line;
            }
            before_open.push(line);
        };
        let addr = line["fields"]["address"]
            .as_str()
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{open:?} names no address: {line}"));
        ServerProcess {
            child,
            lines,
            before_open: Mutex::new(before_open),
            addr,
        }
    }

    /// The first log line whose message is `message` and that no wait has
    /// taken yet: among what the server said before it opened, or else
    /// from now on.
    pub fn wait_for_log(&self, message: &str) -> Value {
        let mut before_open = self
            .before_open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(at) = before_open
            .iter()
            .position(|line| line["fields"]["message"] == message)
        {
            return before_open.remove(at);
        }
        drop(before_open);
        child_log::wait_for(&self.lines, message, LIMIT)
    }

    /// Where it serves metrics, as it said before it opened (started with
    /// `--metrics-listen 127.0.0.1:0`, its port chosen by the system).
    pub fn metrics_addr(&self) -> SocketAddr {
        let before_open = self
            .before_open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        before_open
            .iter()
            .filter(|line| {
                line["fields"]["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("metrics for Prometheus"))
            })
            .find_map(|line| line["fields"]["address"].as_str()?.parse().ok())
            .expect("started with --metrics-listen: its log names the address")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now (`VmRSS` in `/proc/PID/status`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// A new client of the café it runs.
    pub async fn client(&self) -> CafeClient<Channel> {
        connect(self.addr).await
    }

    /// SIGTERM: the server closes politely, as on a rolling restart.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends `signal` (`"INT"` for Ctrl-C, `"HUP"`, `"TERM"`).
    pub fn signal(&self, signal: &str) {
        send_signal(&self.child, signal);
    }

    /// Waits for the process to exit by itself; whether it exited cleanly.
    pub fn wait_exit(mut self) -> bool {
        self.exit_status().success()
    }

    /// Waits for the process to exit by itself; how it exited, and the
    /// rest of its log, read to the end (its last words: a final account).
    pub fn wait_exit_with_log(mut self) -> (ExitStatus, Vec<Value>) {
        let status = self.exit_status();
        // The log thread ends with the child's stderr.
        let rest = self.lines.iter().collect();
        (status, rest)
    }

    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: the process ends at once, in the middle of whatever it
    /// was doing.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A failing test must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command for `binary` with none of this process's `CAFE_*`/`OTEL_*`
/// settings ([`leaky_env`]), so a developer's environment cannot change
/// what a test sees.
pub fn clean_command(binary: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(binary);
    for key in leaky_env() {
        command.env_remove(key);
    }
    command
}

/// Sends `signal` (`"INT"`, `"HUP"`, `"TERM"`) to `child`, as `kill` does.
pub fn send_signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "SIG{signal} sent");
}

/// A tmpfs of a few MiB, mounted for one test and unmounted when dropped.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount` takes it: `2m`). Needs root:
    /// where the mount fails, `None` with a "skipped" line, unless `CI` is
    /// set, where the test must run and this panics.
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if mounted {
            return Some(SmallDisk { dir });
        }
        if std::env::var_os("CI").is_some() {
            panic!("cannot mount a tmpfs (CI runs as root and must run this test)");
        }
        eprintln!("skipped: mounting a tmpfs needs root");
        None
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left of it with a file of zeros.
    pub fn fill(&self) {
        let mut file = File::create(self.filler()).expect("create the filler");
        let block = vec![0u8; 16 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::StorageFull => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // Whatever the last block left.
        while file.write(&[0]).is_ok_and(|written| written == 1) {}
    }

    /// Gives the space [`SmallDisk::fill`] took back.
    pub fn empty(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }

    fn filler(&self) -> PathBuf {
        self.dir.path().join("filler")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a server still holding a file must not keep it mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
