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

use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Connection, Sqlite, SqliteConnection, Transaction,
    migrate::Migrator,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePool, SqlitePoolOptions,
        SqliteSynchronous,
    },
};

use super::{COLUMNS, Record, StoreError, StoredOrder, lock::StoreLock};

/// The SQLite migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// An open SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The file, for logs.
    path: String,
    /// One café per file: shared by every clone of the store, let go once
    /// the pool has closed (`close`), or when the last clone is dropped.
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
            .busy_timeout(Duration::from_secs(5));
        let path = options.get_filename().to_owned();
        create_parent(&path)?;
        let lock = StoreLock::take(&path)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore {
            pool,
            path: path.display().to_string(),
            lock: Arc::new(lock),
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("SQLite {}", self.path)
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
        // Only now: until the pool is closed, SQLite may still write.
        self.lock.release();
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
        let written = write_in(&mut connection, records).await;
        if written.is_err() {
            connection.close_on_drop();
        }
        Ok(written?)
    }
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
