//! The news cafés on a shared line send each other: one notification per
//! write, on [`CHANNEL`], carrying the rows it wrote.

use serde::Deserialize;
use sqlx::{PgPool, postgres::PgListener};

use super::{CHANNEL, OrderRow};
use crate::store::StoredOrder;

/// One notification: a café wrote some orders, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notice {
    /// The café that wrote them (a café skips its own: it applied them as
    /// it wrote them).
    pub cafe: String,
    /// The rows as they were written, in ticket order.
    pub orders: Vec<OrderRow>,
}

impl Notice {
    /// Reads a notification's payload.
    pub fn decode(payload: &str) -> Result<Notice, serde_json::Error> {
        serde_json::from_str(payload)
    }

    /// Whether the payload is `cafe`'s own news, read without decoding its
    /// rows.
    pub fn is_from(payload: &str, cafe: &str) -> bool {
        #[derive(Deserialize)]
        struct Writer<'a> {
            #[serde(borrow)]
            cafe: std::borrow::Cow<'a, str>,
        }
        serde_json::from_str::<Writer<'_>>(payload).is_ok_and(|writer| writer.cafe == cafe)
    }
}

/// A row as `row_to_json` writes it in a notification: every column by
/// name, flat. (Read into [`OrderRow`] through this rather than with
/// `#[serde(flatten)]`, which buffers every field first: each café reads
/// every row the others write.)
#[derive(Deserialize)]
pub(super) struct RowJson {
    id: String,
    ticket: i64,
    customer: String,
    drink: String,
    size: i32,
    request_id: Option<String>,
    claim_token: String,
    placed_at: i64,
    status: i32,
    barista: Option<String>,
    started_at: Option<i64>,
    ready_at: Option<i64>,
    note: Option<String>,
    finished_at: Option<i64>,
    cafe_id: Option<String>,
    version: i64,
}

impl From<RowJson> for OrderRow {
    fn from(row: RowJson) -> Self {
        OrderRow {
            order: StoredOrder {
                id: row.id,
                ticket: row.ticket,
                customer: row.customer,
                drink: row.drink,
                size: row.size,
                request_id: row.request_id,
                claim_token: row.claim_token,
                placed_at: row.placed_at,
                status: row.status,
                barista: row.barista,
                started_at: row.started_at,
                ready_at: row.ready_at,
                note: row.note,
                finished_at: row.finished_at,
                cafe_id: row.cafe_id,
            },
            version: row.version,
        }
    }
}

/// A listener on [`CHANNEL`], on a connection of its own from `pool`.
/// Start it *before* loading the open orders (see the module's docs).
///
/// Read it with [`PgListener::try_recv`]: `Ok(None)` means the connection
/// was lost (and will be made again on the next call), so notifications may
/// have been missed: load the open orders again.
pub async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
