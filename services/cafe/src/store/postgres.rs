//! The PostgreSQL backend: the journal's writes in PostgreSQL's dialect.
//!
//! This is the plain single-café part: the same rows and statements as
//! SQLite's, with `$n` parameters, and tickets the café hands out itself.
//! (Several cafés sharing one line add to it: tickets from the
//! `order_tickets` sequence, `LISTEN/NOTIFY`, claiming with `FOR UPDATE
//! SKIP LOCKED`.)
//!
//! No TLS: the café reaches PostgreSQL over loopback or a private network.

use std::time::Duration;

use sqlx::{
    PgPool, Postgres, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{COLUMNS, Record, StoreError, StoredOrder, redact};

/// The PostgreSQL migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// An open PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Where, without the password, for logs.
    url: String,
}

impl PostgresStore {
    /// Connects to `url` and runs the migrations it has not had yet.
    pub(super) async fn open(url: &str) -> Result<Self, StoreError> {
        let redacted = redact(url);
        let open_error = |source| StoreError::Open {
            url: redacted.clone(),
            source,
        };
        let options: PgConnectOptions = url.parse().map_err(open_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&pool).await?;
        Ok(PostgresStore {
            pool,
            url: redacted,
        })
    }

    pub(super) fn describe(&self) -> String {
        format!("PostgreSQL {}", self.url)
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
    pub(super) async fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for record in records {
            apply(&mut tx, record).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// One record as SQL.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    record: &Record,
) -> Result<(), sqlx::Error> {
    match record {
        Record::Placed(order) => {
            sqlx::query(
                "INSERT INTO orders (id, ticket, customer, drink, size, request_id, claim_token, \
                 placed_at, status, barista, started_at, ready_at, note, finished_at, cafe_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
                "UPDATE orders SET status = $1, barista = $2, started_at = $3, ready_at = $4, \
                 note = $5, finished_at = $6 WHERE id = $7",
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
            sqlx::query("DELETE FROM orders WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
