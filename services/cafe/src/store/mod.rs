//! The order store: where the café's orders outlive its process, and the
//! one seam the café acts on its orders through ([`Orders`]).
//!
//! The [book](crate::book) stays the authority while the café runs. With a
//! store of its own (SQLite) the store is the book's **journal**: each
//! change is handed to it as the book makes it, and one writer thread writes
//! them in batches, one transaction each (group commit); what a customer
//! is told waits until it is durable, and a restart rebuilds the book from
//! the rows ([`restore`]). On a line shared by several cafés (PostgreSQL)
//! the database is written first and every book mirrors it.
//!
//! # Layout
//! - [`Orders`] (`orders.rs`): the seam; memory, journal or shared line.
//! - this module: [`Store`] (memory or SQLite, chosen by URL), one order as
//!   a row ([`StoredOrder`]), how statuses, sizes and times are written,
//!   and [`StoreError`].
//! - `record`: the journal's [`Record`]s, which copy no text, and the
//!   [`Row`]s a store writes, borrowed from them.
//! - `rows`: the book's orders as rows and back, the one conversion.
//! - [`journal`]: the journal and its writer thread (group commit, retries).
//! - `sqlite`: the SQLite backend, the binary's default (a file, WAL mode,
//!   written on the journal's thread); `lock`: one café per file, refused
//!   at once with who holds it.
//! - [`shared`]: the shared line's SQL; [`mirror`]: its actions, written
//!   first; `batches`: placing, claims and READY gathered into one
//!   statement each; `following`: its notifications, heartbeat and leases. A
//!   `postgres://` URL always means a shared line, even for one café.
//!
//! The schema is one table, `orders`, in `services/cafe/migrations/`,
//! embedded and run on start. Times are microseconds since the Unix epoch,
//! sizes and statuses their `cafe.v1` numbers. The store holds exactly what
//! the book remembers: a finished order the book forgets is deleted too.

mod batches;
mod following;
pub mod journal;
mod lock;
pub mod mirror;
mod orders;
mod record;
mod rows;
pub mod shared;
mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cafe_domain::{
    convert::{size_from_wire, status_from_wire},
    menu::Size,
    order::OrderStatus,
    proto::v1 as pb,
};

pub use journal::{Journal, Seq};
pub use lock::Holder;
pub use orders::{BookSettings, Orders, Upkeep};
pub use record::{ChangedRow, ClaimText, NewRow, Record, Row};
pub use rows::restore;

/// Where the café keeps its orders.
#[derive(Debug, Clone)]
pub enum Store {
    /// Nowhere but the book: a restart forgets everything. For `cafe demo`,
    /// tests and the library's default; costs nothing.
    Memory,
    /// A SQLite file.
    Sqlite(sqlite::SqliteStore),
}

/// What a café finds in its store when it starts.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Orders queued or brewing, in ticket order (the line's order).
    pub open: Vec<StoredOrder>,
    /// Finished orders still remembered, oldest first.
    pub finished: Vec<StoredOrder>,
    /// The ticket the next order gets: one past every ticket ever given.
    pub next_ticket: i64,
}

impl Store {
    /// Opens the store `url` names and brings its schema up to date:
    /// `memory` (or `memory:`) for none, `sqlite://FILE` (the file is
    /// created if missing, with its directory). A `postgres://` URL is a
    /// line shared by several cafés: [`shared::SharedLine::open`] opens it.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url == "memory" || url == "memory:" {
            Ok(Store::Memory)
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::open(url).await?))
        } else {
            Err(StoreError::UnknownUrl(redact(url)))
        }
    }

    /// Whether orders outlive the process (false for the memory store).
    pub fn is_durable(&self) -> bool {
        !matches!(self, Store::Memory)
    }

    /// What the store says in logs: its kind and where, without a password.
    pub fn describe(&self) -> String {
        match self {
            Store::Memory => "memory (orders are lost when the café stops)".into(),
            Store::Sqlite(store) => store.describe(),
        }
    }

    /// Every order the store holds: the open ones in ticket order, the
    /// finished ones oldest first.
    pub async fn recover(&self) -> Result<Recovered, StoreError> {
        let store = match self {
            Store::Memory => return Ok(Recovered::default()),
            Store::Sqlite(store) => store.clone(),
        };
        // Reading every row blocks: off the runtime's threads.
        let rows = tokio::task::spawn_blocking(move || store.all_orders())
            .await
            .map_err(|_| StoreError::Closed)??;
        Ok(Recovered::from_rows(rows))
    }

    /// Closes the store's connection (and lets go of a SQLite file's
    /// lock) there and then.
    pub fn close(&self) {
        match self {
            Store::Memory => {}
            Store::Sqlite(store) => store.close(),
        }
    }

    /// Writes `rows` in one transaction: all of them, or none. Blocks
    /// until the commit is done: the journal's writer calls it on a thread
    /// of its own.
    pub fn write(&self, rows: &[Row<'_>]) -> Result<(), StoreError> {
        match self {
            Store::Memory => Ok(()),
            Store::Sqlite(store) => store.write(rows),
        }
    }
}

impl Recovered {
    /// Sorts rows read in any order into the open line and the finished.
    fn from_rows(rows: Vec<StoredOrder>) -> Self {
        let next_ticket = rows.iter().map(|row| row.ticket + 1).max().unwrap_or(0);
        let (mut open, mut finished): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|row| matches!(row.status(), Some(status) if !status.is_final()));
        open.sort_by_key(|row| row.ticket);
        finished.sort_by_key(|row| (row.finished_at.unwrap_or(row.placed_at), row.ticket));
        Recovered {
            open,
            finished,
            next_ticket,
        }
    }
}

/// The columns of `orders`, in [`StoredOrder`]'s order, for `SELECT`s.
pub(crate) const COLUMNS: &str = "id, ticket, customer, drink, size, request_id, claim_token, \
    placed_at, status, barista, started_at, ready_at, note, finished_at, cafe_id";

/// One order as a row of `orders` (see the migrations for each column).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredOrder {
    /// The order's id.
    pub id: String,
    /// Its number in the line.
    pub ticket: i64,
    /// Who ordered.
    pub customer: String,
    /// The menu id of the drink.
    pub drink: String,
    /// The `cafe.v1.Size` number.
    pub size: i32,
    /// The customer's idempotency key, if they gave one.
    pub request_id: Option<String>,
    /// The claim token, as handed to the customer (32 hex digits).
    pub claim_token: String,
    /// When it was placed ([`micros`]).
    pub placed_at: i64,
    /// The `cafe.v1.OrderStatus` number.
    pub status: i32,
    /// Who is brewing or brewed it.
    pub barista: Option<String>,
    /// When a barista started on it.
    pub started_at: Option<i64>,
    /// When it was ready.
    pub ready_at: Option<i64>,
    /// Why its latest change happened, when that needs saying.
    pub note: Option<String>,
    /// When it reached its final status.
    pub finished_at: Option<i64>,
    /// PostgreSQL's shared line: the café brewing it.
    pub cafe_id: Option<String>,
}

impl StoredOrder {
    /// Its status, if the number is one.
    pub fn status(&self) -> Option<OrderStatus> {
        status_from_wire(self.status)
    }

    /// Applies a later change to this row (the columns a change writes).
    pub fn apply(&mut self, change: StoredChange) {
        self.status = change.status;
        self.barista = change.barista;
        self.started_at = change.started_at;
        self.ready_at = change.ready_at;
        self.note = change.note;
        self.finished_at = change.finished_at;
    }

    /// Its size, if the number is one (0, unspecified, is medium).
    pub fn size(&self) -> Option<Size> {
        size_from_wire(self.size)
            .ok()
            .map(|size| size.unwrap_or(Size::Medium))
    }
}

/// What changed about one order after it was placed: the columns a change
/// writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChange {
    /// The order's ticket: its row's key.
    pub ticket: i64,
    /// The `cafe.v1.OrderStatus` number.
    pub status: i32,
    /// Who is brewing or brewed it.
    pub barista: Option<String>,
    /// When a barista started on it.
    pub started_at: Option<i64>,
    /// When it was ready.
    pub ready_at: Option<i64>,
    /// Why this change happened.
    pub note: Option<String>,
    /// When it reached its final status.
    pub finished_at: Option<i64>,
}

/// A time as written: microseconds since the Unix epoch (0 before it).
pub fn micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A time as read back.
pub fn from_micros(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// A status as written: its `cafe.v1.OrderStatus` number.
pub fn status_number(status: OrderStatus) -> i32 {
    pb::OrderStatus::from(status) as i32
}

/// A size as written: its `cafe.v1.Size` number.
pub fn size_number(size: Size) -> i32 {
    pb::Size::from(size) as i32
}

/// What can go wrong with the store. The messages are for the operator
/// reading the café's log or its exit message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no store the café knows.
    #[error(
        "cannot use the order store {0:?}: give sqlite://FILE, postgres://USER@HOST/DATABASE or memory"
    )]
    UnknownUrl(String),

    /// The database could not be opened or reached.
    #[error("cannot open the order store {url}: {source}")]
    Open {
        /// Where (without a password).
        url: String,
        /// Why.
        source: sqlx::Error,
    },

    /// The SQLite file's directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },

    /// Another café holds the SQLite file: said before the file is opened,
    /// with that café's process, and what to do.
    #[error(
        "the data directory {dir} is in use by another café{holder}: stop that café, or start \
         this one with another --data-dir (or --database-url)"
    )]
    Held {
        /// The directory of the SQLite file (`--data-dir`, by default).
        dir: String,
        /// The café that holds it, as far as it can be found.
        holder: Holder,
    },

    /// The lock file beside the SQLite file cannot be made or locked.
    #[error("cannot lock the order store with {path}: {source}")]
    LockFile {
        /// The lock file.
        path: String,
        /// Why.
        source: std::io::Error,
    },

    /// The schema could not be brought up to date.
    #[error("cannot bring the order store's schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A read or write failed.
    #[error("the order store failed: {0}")]
    Sql(#[from] sqlx::Error),

    /// The SQLite file could not be opened for writing.
    #[error("cannot open the order store {url}: {source}")]
    OpenSqlite {
        /// Where.
        url: String,
        /// Why.
        source: rusqlite::Error,
    },

    /// A read or write of the SQLite file failed.
    #[error("the order store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The store was used after it was closed.
    #[error("the order store is closed")]
    Closed,

    /// The SQLite file is empty (0 bytes) where a database was: SQLite
    /// would start it as a new store, every order it held forgotten.
    #[error(
        "the order store {0} is empty (0 bytes): every order it held is gone. Restore it \
         from a backup, or delete it to start a café with no orders"
    )]
    Empty(String),

    /// The SQLite file fails SQLite's `quick_check`.
    #[error(
        "the order store {path} is damaged ({found}){}: no order in it can be trusted. \
         Restore it from a backup, or salvage it (sqlite3 {path} .recover | sqlite3 NEW.db) \
         and start on the new file",
        match .open_readable {
            Some(open) => format!("; {open} open orders can still be read"),
            None => String::new(),
        }
    )]
    Damaged {
        /// The file.
        path: String,
        /// SQLite's first complaint.
        found: String,
        /// How many queued or brewing orders a plain read still finds.
        open_readable: Option<i64>,
    },

    /// The SQLite file, or its directory, cannot be written.
    #[error(
        "the order store {path} cannot be written ({source}): give the café's user write \
         access to the file and its directory"
    )]
    ReadOnly {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },

    /// The SQLite file was replaced by another under the running café.
    #[error(
        "the order store {0} was replaced by another file under the café: move that file \
         away (the café then writes its own again), or stop the café"
    )]
    Replaced(String),

    /// The SQLite file, deleted under the café, could not be put back.
    #[error("cannot write the order store {path} again: {source}")]
    Rewrite {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// `url` with any password replaced, fit for a log line.
pub(crate) fn redact(url: &str) -> String {
    // scheme://user:password@host… → scheme://user:***@host…
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
