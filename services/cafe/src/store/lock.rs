//! One café per SQLite file, said at once: an advisory lock (`flock`) on a
//! lock file beside the database, taken before the database is opened and
//! held for as long as the store is open.
//!
//! SQLite's own exclusive lock refuses a second café too, but only after
//! its busy timeout, and in words ("database is locked") that name neither
//! the file nor who holds it. The lock file holds its holder's process id,
//! so the second café can say which process to stop.
//!
//! Why a lock and not a pid file alone: the kernel lets go of a `flock`
//! when its holder's file is closed, however the holder ended (`kill -9`
//! and the OOM killer included), so there is never a stale lock to clean up
//! by hand. The pid a dead café left in the file is only ever read while
//! someone holds the lock, and the next café to take it overwrites it.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use fs4::{FileExt, TryLockError};

use super::StoreError;

/// The lock on one SQLite file. Owned by the store; dropping it closes the
/// file, which lets go of the lock, and so does [`StoreLock::release`].
#[derive(Debug)]
pub(super) struct StoreLock {
    file: File,
}

/// The process that holds a store's lock, as far as it can be found.
#[derive(Debug, Default)]
pub struct Holder {
    /// The pid it wrote in the lock file; `None` if it has not written it
    /// yet (it took the lock a moment ago) or the file cannot be read.
    pid: Option<u32>,
    /// Its command line, from `/proc/<pid>/cmdline`, when this process can
    /// see it (not across a container's pid namespace).
    command: Option<String>,
}

impl StoreLock {
    /// Takes the lock of the SQLite file `database`, or says who holds it.
    /// Never waits: a café that cannot have its store should say so now.
    pub(super) fn take(database: &Path) -> Result<StoreLock, StoreError> {
        let path = lock_path(database);
        let lock_error = |source| StoreError::LockFile {
            path: path.display().to_string(),
            source,
        };
        // Not truncated on open: until the lock is ours, the pid in the
        // file is the holder's, and the error below reads it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_error)?;
        // Called through fs4's trait by name: std's inherent `try_lock` is
        // newer than the workspace's MSRV.
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Held {
                    dir: data_dir(database).display().to_string(),
                    holder: Holder::read(&mut file),
                });
            }
            Err(TryLockError::Error(source)) => return Err(lock_error(source)),
        }
        // Ours now: replace whatever pid the previous holder left.
        file.set_len(0).map_err(lock_error)?;
        writeln!(file, "{}", std::process::id()).map_err(lock_error)?;
        Ok(StoreLock { file })
    }

    /// Lets go of the lock while the store is still owned: once it has
    /// closed its database, the next café may open it (a restart in the
    /// same process, as the store's tests do, included).
    pub(super) fn release(&self) {
        // Through fs4 by name, as in `take`. Failing to unlock leaves the
        // lock to the file's closing.
        let _ = FileExt::unlock(&self.file);
    }
}

impl Holder {
    /// Reads the holder's pid from its lock file, and its command line from
    /// `/proc`.
    fn read(file: &mut File) -> Holder {
        let mut text = String::new();
        let pid = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| text.trim().parse::<u32>().ok());
        let command = pid.and_then(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            command_line(&raw)
        });
        Holder { pid, command }
    }
}

impl std::fmt::Display for Holder {
    /// ` (pid 4242: cafe-server --listen …)`, ` (pid 4242)`, or nothing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.pid, &self.command) {
            (Some(pid), Some(command)) => write!(f, " (pid {pid}: {command})"),
            (Some(pid), None) => write!(f, " (pid {pid})"),
            (None, _) => Ok(()),
        }
    }
}

/// `/proc/<pid>/cmdline` (arguments ended by NULs) as one short line.
fn command_line(raw: &[u8]) -> Option<String> {
    /// Enough to recognise the process; its flags can run long.
    const SHOWN: usize = 120;
    let words: Vec<String> = raw
        .split(|&byte| byte == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).replace(char::is_control, " "))
        .collect();
    let line = words.join(" ");
    match line.char_indices().nth(SHOWN) {
        None if line.is_empty() => None,
        None => Some(line),
        Some((end, _)) => Some(format!("{}…", &line[..end])),
    }
}

/// The lock file of the SQLite file `database`: `cafe.db` → `cafe.db.lock`,
/// beside it (in the data directory, by default).
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The directory `database` is in, as the person who started the café
/// would name it.
fn data_dir(database: &Path) -> &Path {
    match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_at_once_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("cafe.db");
        let held = StoreLock::take(&database).expect("the first takes the lock");
        // flock locks belong to an open file, not a process: a second open
        // in this same process is refused as another café's would be.
        let error = StoreLock::take(&database).expect_err("the second is refused");
        let message = error.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("--data-dir"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        // Released (the store closed), and the next one takes it.
        held.release();
        let next = StoreLock::take(&database).expect("free once released");
        // Dropped, likewise.
        drop(next);
        StoreLock::take(&database).expect("free once dropped");
    }

    #[test]
    fn a_command_line_reads_as_one_short_line() {
        assert_eq!(
            command_line(b"cafe-server\0--data-dir\0/tmp/x\0").as_deref(),
            Some("cafe-server --data-dir /tmp/x")
        );
        assert_eq!(command_line(b""), None);
        let long = command_line(&[b'a'; 500]).unwrap();
        assert_eq!(long.chars().count(), 121);
        assert_eq!(
            command_line(b"a\nb\0c").as_deref(),
            Some("a b c"),
            "no line breaks"
        );
    }
}
