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
//! (`locking_mode=EXCLUSIVE`): the journal's writer is the only writer, and
//! a second café started on the same file by mistake fails to start
//! ("database is locked") instead of handing out the same tickets. (So
//! `sqlite3` can read the file only while the café is stopped; several
//! cafés share orders through PostgreSQL.)
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
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{
    Connection, Sqlite, SqliteConnection, Transaction,
    migrate::Migrator,
    pool::PoolConnection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePool, SqlitePoolOptions,
        SqliteSynchronous,
    },
};

use tracing::{error, warn};

use super::{COLUMNS, Record, StoreError, StoredOrder};

/// The SQLite migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// An open SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file.
    path: PathBuf,
    /// Which file the connection has open: compared with what `path`
    /// names before each write, to notice the file deleted or replaced.
    /// Changed only by the writer, when it writes the file again.
    file: Arc<Mutex<Option<FileId>>>,
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
            .busy_timeout(Duration::from_secs(5));
        let path = options.get_filename().to_owned();
        create_parent(&path)?;
        refuse_empty(&path)?;
        refuse_read_only(&path)?;
        // Never closed while the café runs (sqlx would close an idle one
        // after 10 minutes, and any after 30): it holds the file's lock, and
        // a deleted file's orders until they are written again.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        if let Err(error) = check_intact(&pool, &path).await {
            pool.close().await;
            return Err(error);
        }
        MIGRATOR.run(&pool).await?;
        let file = FileId::of(&path);
        Ok(SqliteStore {
            pool,
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// Every row.
    pub(super) async fn all_orders(&self) -> Result<Vec<StoredOrder>, StoreError> {
        let rows = sqlx::query_as::<_, StoredOrder>(&format!("SELECT {COLUMNS} FROM orders"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    /// Writes `records` in one transaction.
    ///
    /// A connection on which a write failed is closed, not reused: after a
    /// failed `COMMIT` (a full disk, an I/O error) SQLite may already have
    /// rolled the transaction back while sqlx still counts it as open, and
    /// the next "transaction" on that connection would then be a savepoint
    /// inside one that is never committed: every later write would report
    /// success and reach no disk. A fresh connection starts from the file.
    pub(super) async fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await?;
        if self.file_gone() {
            self.write_file_again(connection).await?;
            connection = self.pool.acquire().await?;
        }
        let written = write_in(&mut connection, records).await;
        if written.is_err() {
            connection.close_on_drop();
        }
        Ok(written?)
    }

    /// Whether the file the connection has open is no longer the one
    /// `path` names (deleted, or another file put in its place).
    fn file_gone(&self) -> bool {
        *self.open_file() != FileId::of(&self.path)
    }

    fn open_file(&self) -> std::sync::MutexGuard<'_, Option<FileId>> {
        // A plain value: a poisoned lock holds a whole one.
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The file was deleted: every change kept so far lives
    /// only in the copy the connection still has open, and a restart would
    /// find none of it. So that copy is written to `path` again
    /// (`VACUUM INTO` a new file, renamed into place) and the connection
    /// reopened on it, before any new change is kept. Another file in its
    /// place is not overwritten: that is an error until it is moved away.
    async fn write_file_again(
        &self,
        mut connection: PoolConnection<Sqlite>,
    ) -> Result<(), StoreError> {
        // The connection is kept open on every way out but success: until
        // the file is written again, it holds the only copy of the orders.
        if FileId::of(&self.path).is_some() {
            return Err(StoreError::Replaced(self.path.display().to_string()));
        }
        error!(file = %self.path.display(),
               "the order store's file was deleted under the café: writing it again from the open copy");
        create_parent(&self.path)?;
        let copy = self.path.with_extension("rewrite");
        let _ = std::fs::remove_file(&copy);
        sqlx::query("VACUUM INTO ?")
            .bind(copy.display().to_string())
            .execute(&mut *connection)
            .await?;
        std::fs::rename(&copy, &self.path).map_err(|source| StoreError::Rewrite {
            path: self.path.display().to_string(),
            source,
        })?;
        // The old connection goes (closing it checkpoints into the deleted
        // file, harmlessly); the pool's next one opens the new file.
        if let Err(error) = connection.detach().close().await {
            warn!(%error, "closing the order store's old connection");
        }
        *self.open_file() = FileId::of(&self.path);
        warn!(file = %self.path.display(), "the order store's file is written again");
        Ok(())
    }
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
async fn check_intact(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let found = match sqlx::query_scalar::<_, String>("PRAGMA quick_check")
        .fetch_all(pool)
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
    .fetch_one(pool)
    .await
    .ok();
    Err(StoreError::Damaged {
        path: path.display().to_string(),
        found,
        open_readable: readable,
    })
}

/// Writes `records` on `connection` in one transaction.
async fn write_in(
    connection: &mut SqliteConnection,
    records: &[Record],
) -> Result<(), sqlx::Error> {
    let mut tx = connection.begin().await?;
    for record in records {
        apply(&mut tx, record).await?;
    }
    tx.commit().await
}

/// One record as SQL. The statements are prepared once per connection and
/// cached by sqlx.
async fn apply(tx: &mut Transaction<'_, Sqlite>, record: &Record) -> Result<(), sqlx::Error> {
    match record {
        Record::Placed(order) => {
            sqlx::query(
                "INSERT INTO orders (id, ticket, customer, drink, size, request_id, claim_token, \
                 placed_at, status, barista, started_at, ready_at, note, finished_at, cafe_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&order.id)
            .bind(order.ticket)
            .bind(&order.customer)
            .bind(&order.drink)
            .bind(order.size)
            .bind(&order.request_id)
            .bind(&order.claim_token)
            .bind(order.placed_at)
            .bind(order.status)
            .bind(&order.barista)
            .bind(order.started_at)
            .bind(order.ready_at)
            .bind(&order.note)
            .bind(order.finished_at)
            .bind(&order.cafe_id)
            .execute(&mut **tx)
            .await?;
        }
        Record::Changed(change) => {
            sqlx::query(
                "UPDATE orders SET status = ?, barista = ?, started_at = ?, ready_at = ?, \
                 note = ?, finished_at = ? WHERE id = ?",
            )
            .bind(change.status)
            .bind(&change.barista)
            .bind(change.started_at)
            .bind(change.ready_at)
            .bind(&change.note)
            .bind(change.finished_at)
            .bind(&change.id)
            .execute(&mut **tx)
            .await?;
        }
        Record::Forgotten(id) => {
            sqlx::query("DELETE FROM orders WHERE id = ?")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
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
