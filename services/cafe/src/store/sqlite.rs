//! The SQLite backend: the binary's default store, one file beside the café.
//!
//! The file is opened in WAL mode with `synchronous=NORMAL`: a commit is in
//! the write-ahead log before it returns, so it survives the café's process
//! dying (`kill -9`, a panic, an out-of-memory kill); only the machine
//! losing power could lose the last commits, which `synchronous=FULL`
//! would keep at the price of an `fsync` per commit. Group commit (see
//! [`super::journal`]) makes either affordable: one commit covers every
//! change made while the previous one was written.
//!
//! One connection, holding the file's lock for the café's whole life
//! (`locking_mode=EXCLUSIVE`): the journal's writer is the only writer. A
//! second café started on the same file by mistake is refused before it
//! opens it, at once and saying who holds it (see `lock`), instead of
//! handing out the same tickets. (So `sqlite3` can read the file only while
//! the café is stopped; several cafés share orders through PostgreSQL.)
//!
//! The connection is `rusqlite`'s, called directly by the journal's writer
//! on its own thread: a statement is a function call, prepared once and
//! reused. (sqlx, which the café keeps for PostgreSQL, runs each SQLite
//! statement on a worker thread of its own and hands the answer back to
//! the runtime: a channel and two wake-ups per statement, which cost about
//! as much as SQLite's own work; `docs/performance.md` has the profile.)
//! sqlx still brings the schema up to date on open, so the migrations stay
//! one mechanism for both databases.
//!
//! A file that cannot be trusted is refused at start, before anything is
//! promised: an empty (0-byte) file where a database was, or one whose
//! pages fail SQLite's `quick_check`. And a file deleted under the running
//! café is written again, from the copy its open connection still reads,
//! before the next change is kept: otherwise every change from then on
//! would go to a file no restart can find. docs/cafe-server.md has the
//! table of what the café guarantees under each fault.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};
use sqlx::{
    ConnectOptions, Connection as _, SqliteConnection,
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqliteSynchronous},
};

use tracing::{error, warn};

use super::{COLUMNS, Row, StoreError, StoredOrder, lock::StoreLock};

mod writing;

/// The SQLite migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long opening waits for a café that is stopping to let go of the
/// file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The one connection; `None` once closed. Locked by the journal's
    /// writer for each batch (and by a restart's read before it starts),
    /// never across an `.await`.
    connection: Arc<Mutex<Option<Connection>>>,
    /// The database file.
    path: PathBuf,
    /// Which file the connection has open: compared with what `path`
    /// names before each write, to notice the file deleted or replaced.
    /// Changed only by the writer, when it writes the file again.
    file: Arc<Mutex<Option<FileId>>>,
    /// One café per file: shared by every clone of the store, let go once
    /// the connection has closed (`close`), or when the last clone is
    /// dropped.
    lock: Arc<StoreLock>,
}

impl SqliteStore {
    /// Opens (creating if missing, with its directory) the file `url`
    /// names, and runs the migrations it has not had yet.
    pub(super) async fn open(url: &str) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .locking_mode(SqliteLockingMode::Exclusive)
            // A café that is stopping may hold the file a moment longer.
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_owned();
        create_parent(&path)?;
        refuse_empty(&path)?;
        refuse_read_only(&path)?;
        // Before SQLite is asked: a held file is said at once, with who
        // holds it, rather than after SQLite's busy timeout.
        let lock = StoreLock::take(&path)?;
        // sqlx migrates on a connection of its own, closed (its worker
        // thread gone, the file's lock let go) before the connection that
        // keeps the file opens. Not a pool: a pool returns a connection in
        // the background, and closing it may not wait for that one.
        let mut migrating = options.connect().await.map_err(open_error)?;
        if let Err(error) = check_intact(&mut migrating, &path).await {
            let _ = migrating.close().await;
            return Err(error);
        }
        MIGRATOR.run_direct(&mut migrating).await?;
        migrating.close().await.map_err(open_error)?;

        // Opening may wait for the file's lock (`BUSY_TIMEOUT`): off the
        // runtime's threads.
        let file = path.clone();
        let connection = tokio::task::spawn_blocking(move || connect(&file))
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|source| StoreError::OpenSqlite {
                url: url.to_owned(),
                source,
            })?;
        let file = FileId::of(&path);
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(Some(connection))),
            path,
            file: Arc::new(Mutex::new(file)),
            lock: Arc::new(lock),
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    fn connection(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic mid-write leaves at most an open transaction, which the
        // next write rolls back (see `write`).
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the connection, letting go of the file's locks.
    pub(super) fn close(&self) {
        // Dropping the connection closes it there and then.
        self.connection().take();
        // Only now: until the connection is closed, SQLite may still write.
        self.lock.release();
    }

    /// Every row.
    pub(super) fn all_orders(&self) -> Result<Vec<StoredOrder>, StoreError> {
        let connection = self.connection();
        let connection = connection.as_ref().ok_or(StoreError::Closed)?;
        let mut select = connection.prepare(&format!("SELECT {COLUMNS} FROM orders"))?;
        let rows = select
            .query_map([], |row| {
                Ok(StoredOrder {
                    id: row.get(0)?,
                    ticket: row.get(1)?,
                    customer: row.get(2)?,
                    drink: row.get(3)?,
                    size: row.get(4)?,
                    request_id: row.get(5)?,
                    claim_token: row.get(6)?,
                    placed_at: row.get(7)?,
                    status: row.get(8)?,
                    barista: row.get(9)?,
                    started_at: row.get(10)?,
                    ready_at: row.get(11)?,
                    note: row.get(12)?,
                    finished_at: row.get(13)?,
                    cafe_id: row.get(14)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Writes `rows` in one transaction. Blocks for the commit: called
    /// by the journal's writer on its own thread.
    ///
    /// A transaction whose `COMMIT` failed (a full disk, an I/O error) may
    /// have been rolled back by SQLite already, or may still be open: it is
    /// rolled back if it is, so the next batch starts its own transaction
    /// rather than nesting in one that is never committed.
    pub(super) fn write(&self, rows: &[Row<'_>]) -> Result<(), StoreError> {
        let mut connection = self.connection();
        if self.file_gone() {
            self.write_file_again(&mut connection)?;
        }
        let connection = connection.as_ref().ok_or(StoreError::Closed)?;
        let written = writing::write_in(connection, rows);
        if written.is_err() && !connection.is_autocommit() {
            connection.execute_batch("ROLLBACK")?;
        }
        Ok(written?)
    }

    /// Whether the file the connection has open is no longer the one
    /// `path` names (deleted, or another file put in its place).
    fn file_gone(&self) -> bool {
        *self.open_file() != FileId::of(&self.path)
    }

    fn open_file(&self) -> MutexGuard<'_, Option<FileId>> {
        // A plain value: a poisoned lock holds a whole one.
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The file was deleted: every change kept so far lives only in the
    /// copy the connection still has open, and a restart would find none
    /// of it. So that copy is written to `path` again (`VACUUM INTO` a new
    /// file, renamed into place) and the connection reopened on it, before
    /// any new change is kept. Another file in its place is not
    /// overwritten: that is an error until it is moved away.
    fn write_file_again(&self, connection: &mut Option<Connection>) -> Result<(), StoreError> {
        // The connection is kept open on every way out but success: until
        // the file is written again, it holds the only copy of the orders.
        if FileId::of(&self.path).is_some() {
            return Err(StoreError::Replaced(self.path.display().to_string()));
        }
        let open = connection.as_ref().ok_or(StoreError::Closed)?;
        error!(file = %self.path.display(),
               "the order store's file was deleted under the café: writing it again from the open copy");
        create_parent(&self.path)?;
        let copy = self.path.with_extension("rewrite");
        let _ = std::fs::remove_file(&copy);
        open.execute("VACUUM INTO ?", [copy.display().to_string()])?;
        std::fs::rename(&copy, &self.path).map_err(|source| StoreError::Rewrite {
            path: self.path.display().to_string(),
            source,
        })?;
        // SQLite sees the old connection's file has moved, so closing it
        // neither checkpoints nor deletes its write-ahead log: that log
        // stays under `path`'s name, and a connection opening the new file
        // would replay the old file's pages into it ("database disk image
        // is malformed" at the next write). The copy already holds all the
        // log did, so the name is cleared first (the old connection keeps
        // its open log until it closes); then the old connection goes, and
        // its lock with it, and the new one opens the new file.
        for stale in [wal(&self.path), shm(&self.path)] {
            if let Err(error) = std::fs::remove_file(&stale)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                return Err(StoreError::Rewrite {
                    path: stale.display().to_string(),
                    source: error,
                });
            }
        }
        if let Some(old) = connection.take()
            && let Err((_, error)) = old.close()
        {
            warn!(%error, "closing the order store's old connection");
        }
        *connection = Some(connect(&self.path)?);
        *self.open_file() = FileId::of(&self.path);
        warn!(file = %self.path.display(), "the order store's file is written again");
        Ok(())
    }
}

/// Opens the connection the café keeps: WAL, `synchronous=NORMAL`, the
/// file's lock held from here on.
fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    // Reading the journal mode back takes the file's lock at once (in
    // exclusive mode it is kept), so a second café fails here.
    connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch("BEGIN IMMEDIATE; COMMIT")?;
    Ok(connection)
}

/// Which file a path names: its device and inode (on Unix; elsewhere only
/// whether it exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileId {
                device: metadata.dev(),
                inode: metadata.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            Some(FileId {
                device: 0,
                inode: 0,
            })
        }
    }
}

/// The write-ahead log beside the database file `path`.
fn wal(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The shared-memory index beside the database file `path` (SQLite makes
/// none in exclusive locking mode, but one left by another program would
/// describe another log).
fn shm(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

/// Refuses a database file of 0 bytes with no log beside it: SQLite would
/// take it for a new, empty database, and the café would start as if it
/// never had an order. A file the café made is never empty: its first
/// start writes the header, before any order.
fn refuse_empty(path: &Path) -> Result<(), StoreError> {
    let len = |path: &Path| std::fs::metadata(path).map(|metadata| metadata.len()).ok();
    if len(path) == Some(0) && len(&wal(path)).unwrap_or(0) == 0 {
        return Err(StoreError::Empty(path.display().to_string()));
    }
    Ok(())
}

/// Refuses a database file, or a directory, the café cannot write: SQLite
/// would open the file read-only without a word, and fail only at its
/// first write (or, in WAL mode, with a bare "disk I/O error").
fn refuse_read_only(path: &Path) -> Result<(), StoreError> {
    let read_only = |source: std::io::Error| StoreError::ReadOnly {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(read_only)?;
    }
    // The write-ahead log is made beside it.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let probe = dir.join(".cafe-write-check");
    std::fs::File::create(&probe).map_err(read_only)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// SQLite's `quick_check` over every page, so a damaged file is refused
/// at start, with whatever can still be read counted, rather than met at
/// the first write, after orders were taken.
async fn check_intact(connection: &mut SqliteConnection, path: &Path) -> Result<(), StoreError> {
    let found = match sqlx::query_scalar::<_, String>("PRAGMA quick_check")
        .fetch_all(&mut *connection)
        .await
    {
        Ok(lines) if lines == ["ok"] => return Ok(()),
        // One complaint per row, or several in one row: the first, and how
        // many more, so the error stays one line.
        Ok(lines) => {
            let complaints: Vec<&str> = lines
                .iter()
                .flat_map(|line| line.lines())
                .filter(|line| !line.starts_with("***") && !line.trim().is_empty())
                .collect();
            match complaints.len() {
                0 | 1 => complaints.concat(),
                more => format!("{}, and {} more", complaints[0], more - 1),
            }
        }
        Err(error) => error.to_string(),
    };
    // Which orders are affected: what a plain read of the table (no
    // index, which may be what is damaged) still gets out of it.
    let readable = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM orders NOT INDEXED WHERE status IN (1, 2)",
    )
    .fetch_one(&mut *connection)
    .await
    .ok();
    Err(StoreError::Damaged {
        path: path.display().to_string(),
        found,
        open_readable: readable,
    })
}

/// Creates the directory the database file goes in (the data directory,
/// on a café's first start).
fn create_parent(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}
