//! Several cafés on one line: the SQL that lets `cafe-server` processes
//! share one PostgreSQL database, and the news they send each other.
//!
//! Each café keeps its own book in memory (that is where `GetOrder`,
//! `WatchOrder` and the buzzers look), but where several cafés could
//! disagree the **database decides**, in one statement each:
//!
//! - **Placing**: `INSERT … RETURNING`, one
//!   sequence numbering every café's tickets; `ON CONFLICT (customer,
//!   request_id) DO NOTHING` gives a retry at *another* café the order
//!   placed first ([`SharedLine::earlier`] finds it).
//! - **Taking the next orders**: `UPDATE …`
//!   the first queued rows `FOR UPDATE SKIP LOCKED`, one for each idle
//!   barista: two cafés claiming at once lock different rows, so no drink
//!   is brewed twice and nobody queues behind a lock.
//! - **Every other change** is an `UPDATE` guarded by what must still be
//!   true: the loser of a race changes nothing and learns so.
//!
//! Placing, claims and READY go together, many orders in one statement
//! ([`SharedLine::write_many`], `many.rs`): a busy café gathers them
//! (`super::batches`), so a line of thousands of orders a second costs
//! hundreds of commits a second, not thousands.
//!
//! Every write also calls `pg_notify('cafe_orders', …)` in the *same*
//! statement, one notification carrying the rows it wrote ([`Notice`]),
//! delivered only on commit, in commit order; each café listens
//! ([`listen`]) before it loads the open orders, and tells what it heard
//! twice apart by the row's `version`. A café's heartbeat
//! ([`SharedLine::heartbeat`]) and leases ([`SharedLine::expire_leases`],
//! on the database's clock) return the drinks of a café that died; one that
//! stops on SIGTERM hands back what it could not finish
//! ([`SharedLine::hand_back`]). The whole story: docs/cafe-server.md.

use std::time::{Duration, SystemTime};

use cafe_domain::order::OrderStatus;

use super::{StoreError, StoredOrder, micros, redact, status_number};
use serde::Deserialize;
use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};

/// The PostgreSQL migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The most connections one café keeps to the database (its listener
/// holds one more). Every barista waits for one to claim and to write
/// READY, and every order placed for one to insert: too few, and baristas
/// queue for a connection between drinks (docs/performance.md, "Other
/// measurements"). Kept well under PostgreSQL's default `max_connections` (100), so that
/// several cafés fit.
const POOL_SIZE: u32 = 16;

/// The `NOTIFY` channel every café listens on.
pub const CHANNEL: &str = "cafe_orders";

/// How often a café says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a café may be silent before its brewing orders go back to the
/// line.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// The note on an order whose café went silent while brewing it.
pub const LEASE_EXPIRED_NOTE: &str =
    "brewed again: the café brewing it stopped answering before it was ready";

/// The advisory lock a café holds while it vacuums the line (any number,
/// the same for every café).
const VACUUM_LOCK: i64 = 0x00ca_fe0c_1ea2;

/// The note on an order a stopping café could not finish in time.
pub const HANDED_BACK_NOTE: &str = "brewed again: the café brewing it closed before it was ready";

/// Wraps one write of `orders` (an `INSERT` or `UPDATE` without
/// `RETURNING`, after any common table expressions it needs) so that it
/// returns the rows it wrote and tells every café of them, in one
/// statement (so in one transaction): one notification carries the whole
/// batch, split only where a payload would pass PostgreSQL's 8,000 bytes
/// (a row is at most about 2,500: a note of the café's own and a
/// 64-character name). `$1` is always the writing café. With `rows:`, the
/// common table expressions write and the query after them gathers the
/// rows they wrote.
macro_rules! notified {
    ($write:expr) => {
        notified!("", $write)
    };
    ($ctes:expr, $write:expr) => {
        notified!(rows: $ctes, concat!($write, " RETURNING orders.*"))
    };
    (rows: $ctes:expr, $rows:expr) => {
        concat!(
            "WITH ",
            $ctes,
            "changed AS (",
            $rows,
            "), \
             written AS (SELECT ticket, row_to_json(changed)::text AS body FROM changed), \
             chunked AS (SELECT ticket, body, \
                         sum(octet_length(body)) OVER (ORDER BY ticket) / 5000 AS chunk \
                         FROM written), \
             notices AS (SELECT pg_notify('cafe_orders', '{\"cafe\":' || to_json($1::text)::text \
                         || ',\"orders\":[' || string_agg(body, ',' ORDER BY ticket) || ']}') \
                         FROM chunked GROUP BY chunk) \
             SELECT changed.* FROM changed, (SELECT count(*) FROM notices) AS sent"
        )
    };
}

/// The database's clock, in microseconds since the Unix epoch: heartbeats
/// and leases are compared on one clock, whatever the cafés' say.
/// (A macro too, for the statements made with `concat!`.)
macro_rules! db_now {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
    };
}
const DB_NOW: &str = db_now!();

/// One row of `orders`, as the database has it: the order as every store
/// writes it ([`StoredOrder`]), and the shared line's own column.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Deserialize)]
#[serde(from = "news::RowJson")]
pub struct OrderRow {
    /// The order (times in microseconds since the Unix epoch, size and
    /// status as their `cafe.v1` numbers).
    #[sqlx(flatten)]
    pub order: StoredOrder,
    /// How many writes it has had: what a café compares to tell news from
    /// an echo of what it already has.
    pub version: i64,
}

/// A new order, before the database numbers it.
#[derive(Debug, Clone)]
pub struct NewRow {
    /// The id the placing café made for it.
    pub id: String,
    /// Who orders.
    pub customer: String,
    /// The menu id of the drink.
    pub drink: String,
    /// `cafe.v1.Size`.
    pub size: i32,
    /// The customer's idempotency key, if any.
    pub request_id: Option<String>,
    /// The claim token, as the customer will get it.
    pub claim_token: String,
    /// When it was placed.
    pub placed_at: i64,
}

/// What placing gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedRow {
    /// The order: the new one, or the one placed earlier (at any café) with
    /// the same customer and request id.
    pub row: OrderRow,
    /// False when it is the earlier one.
    pub is_new: bool,
}

/// A connection to the shared line, as one café.
#[derive(Debug, Clone)]
pub struct SharedLine {
    pool: PgPool,
    /// This café's id in `cafes` and `orders.cafe_id`: unique per process
    /// (a restarted café is a new one; its old self's orders are returned
    /// by the lease).
    cafe: String,
}

impl SharedLine {
    /// Connects to the database at `url`, brings its schema up to date
    /// (every café runs the migrations; sqlx takes a lock, so two starting
    /// at once run them once), and joins it as a new café with a fresh id.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(url),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        // A process, not a machine: a restarted café is a new café (its
        // old self's drinks in hand come back through the lease).
        let cafe = format!(
            "cafe-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(SharedLine::new(pool, cafe))
    }

    /// The shared line in the database `pool` reaches (already migrated),
    /// as the café `cafe`.
    pub fn new(pool: PgPool, cafe: impl Into<String>) -> Self {
        SharedLine {
            pool,
            cafe: cafe.into(),
        }
    }

    /// This café's id.
    pub fn cafe(&self) -> &str {
        &self.cafe
    }

    /// The pool, for a listener.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Says this café is alive: joins the cafés sharing the line, or
    /// refreshes its heartbeat (joining again if another café took it for
    /// dead and removed it).
    pub async fn heartbeat(&self) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO cafes (id, started_at, heartbeat_at) VALUES ($1, {DB_NOW}, {DB_NOW}) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at"
        ))
        .bind(&self.cafe)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Leaves the cafés sharing the line (a clean stop, after handing
    /// back what it had).
    pub async fn leave(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM cafes WHERE id = $1")
            .bind(&self.cafe)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Places an order at the end of the shared line, or returns the order
    /// the same customer placed earlier with the same request id, at
    /// whichever café.
    pub async fn place(&self, new: &NewRow) -> Result<PlacedRow, sqlx::Error> {
        // Twice at most: the earlier order may be forgotten (deleted)
        // between our conflicting insert and our look for it.
        for _ in 0..2 {
            let inserted: Option<OrderRow> = sqlx::query_as(notified!(
                "INSERT INTO orders \
                 (id, customer, drink, size, request_id, claim_token, placed_at, status) \
                 VALUES ($2, $3, $4, $5, $6, $7, $8, 1) \
                 ON CONFLICT (customer, request_id) WHERE request_id IS NOT NULL DO NOTHING"
            ))
            .bind(&self.cafe)
            .bind(&new.id)
            .bind(&new.customer)
            .bind(&new.drink)
            .bind(new.size)
            .bind(&new.request_id)
            .bind(&new.claim_token)
            .bind(new.placed_at)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = inserted {
                return Ok(PlacedRow { row, is_new: true });
            }
            // A conflict: ON CONFLICT waited for the other insert to
            // commit, so its row is there to read.
            let earlier: Option<OrderRow> =
                sqlx::query_as("SELECT * FROM orders WHERE customer = $1 AND request_id = $2")
                    .bind(&new.customer)
                    .bind(&new.request_id)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = earlier {
                return Ok(PlacedRow { row, is_new: false });
            }
        }
        Err(sqlx::Error::Protocol(format!(
            "order {} conflicts with an order that keeps disappearing",
            new.id
        )))
    }

    /// Another barista of this café takes over an order it is brewing (a
    /// remote barista went away). `None` if it is no longer this café's.
    pub async fn rebrew(
        &self,
        id: &str,
        barista: &str,
        now: SystemTime,
    ) -> Result<Option<OrderRow>, sqlx::Error> {
        sqlx::query_as(notified!(
            "UPDATE orders SET barista = $3, started_at = $4, note = NULL, \
             version = version + 1 \
             WHERE id = $2 AND status = 2 AND cafe_id = $1"
        ))
        .bind(&self.cafe)
        .bind(id)
        .bind(barista)
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
    }

    /// Ends an open order (queued or brewing, at any café) with `status`
    /// (CANCELLED or FAILED: READY is [`SharedLine::write_many`]'s) and `note`.
    /// `None` if it had already ended.
    pub async fn end(
        &self,
        id: &str,
        status: OrderStatus,
        note: &str,
        now: SystemTime,
    ) -> Result<Option<OrderRow>, sqlx::Error> {
        debug_assert!(matches!(
            status,
            OrderStatus::Cancelled | OrderStatus::Failed
        ));
        let status = status_number(status);
        sqlx::query_as(notified!(
            "UPDATE orders SET status = $3, note = $4, finished_at = $5, \
             version = version + 1 \
             WHERE id = $2 AND status IN (1, 2)"
        ))
        .bind(&self.cafe)
        .bind(id)
        .bind(status)
        .bind(note)
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
    }

    /// Notes why an open order waits longer (its barista went away), its
    /// status unchanged. `None` if it has ended.
    pub async fn note(&self, id: &str, note: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        sqlx::query_as(notified!(
            "UPDATE orders SET note = $3, version = version + 1 \
             WHERE id = $2 AND status IN (1, 2)"
        ))
        .bind(&self.cafe)
        .bind(id)
        .bind(note)
        .fetch_optional(&self.pool)
        .await
    }

    /// Returns to the line the orders this café is brewing (`only`: just
    /// that one), with `note`: they keep their tickets, so they are ahead
    /// of everything placed after them. Returns the orders handed back.
    pub async fn hand_back(
        &self,
        only: Option<&str>,
        note: &str,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        sqlx::query_as(notified!(
            "UPDATE orders SET status = 1, cafe_id = NULL, barista = NULL, started_at = NULL, \
             note = $2, version = version + 1 \
             WHERE status = 2 AND cafe_id = $1 AND ($3::text IS NULL OR id = $3)"
        ))
        .bind(&self.cafe)
        .bind(note)
        .bind(only)
        .fetch_all(&self.pool)
        .await
    }

    /// Returns to the line the brewing orders of every café silent for
    /// longer than `lease` (or gone from `cafes` altogether), and forgets
    /// those cafés. Any café may run it, as often as it likes: two running
    /// it at once return each order once (the second finds it queued).
    pub async fn expire_leases(&self, lease: Duration) -> Result<Vec<OrderRow>, sqlx::Error> {
        let lease = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        // The data-modifying CTEs all see the table as it was when the
        // statement began: the `NOT EXISTS` finds cafés gone before it, the
        // `IN (dead)` the ones it removes.
        sqlx::query_as(notified!(
            concat!(
                "dead AS (DELETE FROM cafes WHERE heartbeat_at < ",
                db_now!(),
                " - $2 AND id <> $1 RETURNING id), "
            ),
            "UPDATE orders SET status = 1, cafe_id = NULL, barista = NULL, \
             started_at = NULL, note = $3, version = version + 1 \
             WHERE status = 2 AND cafe_id <> $1 \
               AND (cafe_id IN (SELECT id FROM dead) \
                    OR NOT EXISTS (SELECT 1 FROM cafes WHERE cafes.id = orders.cafe_id))"
        ))
        .bind(&self.cafe)
        .bind(lease)
        .bind(LEASE_EXPIRED_NOTE)
        .fetch_all(&self.pool)
        .await
    }

    /// Every open order (queued or brewing, at any café), in ticket order:
    /// what a café joining the line loads, after it has started to listen.
    pub async fn open_orders(&self) -> Result<Vec<OrderRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM orders WHERE status IN (1, 2) ORDER BY ticket")
            .fetch_all(&self.pool)
            .await
    }

    /// The newest `count` finished orders, newest first: what a joining
    /// café remembers for `GetOrder`.
    pub async fn finished_orders(&self, count: usize) -> Result<Vec<OrderRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM orders WHERE finished_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT $1",
        )
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes the finished orders older than the newest `kept`: retention
    /// in the database, as each café's book forgets them. Returns how many.
    pub async fn prune(&self, kept: usize) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM orders WHERE finished_at <= \
             (SELECT finished_at FROM orders WHERE finished_at IS NOT NULL \
              ORDER BY finished_at DESC OFFSET $1 LIMIT 1)",
        )
        .bind(i64::try_from(kept).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Vacuums `orders` (dead row versions reclaimed, its indexes
    /// cleaned), unless another café is doing it this moment. Returns
    /// whether it did. Every order leaves three or four dead row versions
    /// behind (a placing, two or three updates, retention's delete), and a
    /// claim scans the line's index past every one still there.
    pub async fn vacuum(&self) -> Result<bool, sqlx::Error> {
        // One café at a time: a second VACUUM of a table waits for the
        // first. The lock is the connection's, so it is taken, used and
        // given back on the one connection.
        let mut connection = self.pool.acquire().await?;
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(VACUUM_LOCK)
            .fetch_one(&mut *connection)
            .await?;
        if !mine {
            return Ok(false);
        }
        let vacuumed = sqlx::query("VACUUM orders").execute(&mut *connection).await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(VACUUM_LOCK)
            .execute(&mut *connection)
            .await?;
        vacuumed.map(|_| true)
    }

    /// One order by id, whatever its status.
    pub async fn order(&self, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }
}

mod many;
mod news;

pub use many::{Writes, Written};
pub use news::{Notice, listen};

#[cfg(test)]
mod tests;
