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
//! The connection is `rusqlite`'s, called directly by the journal's writer
//! on its own thread: a statement is a function call, prepared once and
//! reused. (sqlx, which the café keeps for PostgreSQL, runs each SQLite
//! statement on a worker thread of its own and hands the answer back to
//! the runtime: a channel and two wake-ups per statement, which cost about
//! as much as SQLite's own work; `docs/performance.md` has the profile.)
//! sqlx still brings the schema up to date on open, so the migrations stay
//! one mechanism for both databases.

use std::{
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, params};
use sqlx::{
    ConnectOptions, Connection as _,
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqliteSynchronous},
};

use super::{COLUMNS, Record, StoreError, StoredOrder};

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
    /// The file, for logs.
    path: String,
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
        // sqlx migrates on a connection of its own, closed (its worker
        // thread gone, the file's lock let go) before the connection that
        // keeps the file opens. Not a pool: a pool returns a connection in
        // the background, and closing it may not wait for that one.
        let mut migrating = options.connect().await.map_err(open_error)?;
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
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(Some(connection))),
            path: path.display().to_string(),
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("SQLite {}", self.path)
    }

    fn connection(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic mid-write leaves at most an open transaction, which the
        // next write rolls back (see `write`).
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the connection, letting go of the file's lock.
    pub(super) fn close(&self) {
        // Dropping the connection closes it there and then.
        self.connection().take();
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

    /// Writes `records` in one transaction. Blocks for the commit: called
    /// by the journal's writer on its own thread.
    ///
    /// A transaction whose `COMMIT` failed (a full disk, an I/O error) may
    /// have been rolled back by SQLite already, or may still be open: it is
    /// rolled back if it is, so the next batch starts its own transaction
    /// rather than nesting in one that is never committed.
    pub(super) fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        let connection = self.connection();
        let connection = connection.as_ref().ok_or(StoreError::Closed)?;
        let written = write_in(connection, records);
        if written.is_err() && !connection.is_autocommit() {
            connection.execute_batch("ROLLBACK")?;
        }
        Ok(written?)
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

/// Writes `records` on `connection` in one transaction, each kind of
/// record through its one prepared statement. `BEGIN` and `COMMIT` are
/// prepared statements too, not text parsed again for every batch; a
/// transaction left open by a failure is the caller's to roll back.
fn write_in(connection: &Connection, records: &[Record]) -> Result<(), rusqlite::Error> {
    connection.prepare_cached("BEGIN")?.execute([])?;
    for record in records {
        match record {
            Record::Placed(order) => {
                connection
                    .prepare_cached(
                        "INSERT INTO orders (ticket, id, customer, drink, size, request_id, \
                     claim_token, placed_at, status, barista, started_at, ready_at, note, \
                     finished_at, cafe_id) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )?
                    .execute(params![
                        order.ticket,
                        order.id,
                        order.customer,
                        order.drink,
                        order.size,
                        order.request_id,
                        order.claim_token,
                        order.placed_at,
                        order.status,
                        order.barista,
                        order.started_at,
                        order.ready_at,
                        order.note,
                        order.finished_at,
                        order.cafe_id,
                    ])?;
            }
            Record::Changed(change) => {
                connection
                    .prepare_cached(
                        "UPDATE orders SET status = ?, barista = ?, started_at = ?, ready_at = ?, \
                     note = ?, finished_at = ? WHERE ticket = ?",
                    )?
                    .execute(params![
                        change.status,
                        change.barista,
                        change.started_at,
                        change.ready_at,
                        change.note,
                        change.finished_at,
                        change.ticket,
                    ])?;
            }
            Record::Forgotten(ticket) => {
                connection
                    .prepare_cached("DELETE FROM orders WHERE ticket = ?")?
                    .execute([ticket])?;
            }
        }
    }
    connection.prepare_cached("COMMIT")?.execute([])?;
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
