//! The shared line's writes for many orders at once: each is one statement
//! (one transaction, one notification), whatever the number of orders,
//! which is how a line of thousands of orders a second costs PostgreSQL
//! hundreds of commits, not thousands. [`super::super::batches`] gathers
//! the cafés' requests into them.

use std::time::SystemTime;

use super::{NewRow, OrderRow, SharedLine};
use crate::store::micros;

impl SharedLine {
    /// Places `new` orders at the end of the shared line, in that order,
    /// in one statement. Returns the rows it inserted: an order whose
    /// customer and request id match an earlier one (at any café, or
    /// earlier in `new`) is not among them ([`SharedLine::earlier`] finds
    /// what it matched).
    pub async fn place_many(&self, new: &[NewRow]) -> Result<Vec<OrderRow>, sqlx::Error> {
        let column = |field: fn(&NewRow) -> &str| new.iter().map(field).collect::<Vec<_>>();
        sqlx::query_as(notified!(
            "INSERT INTO orders \
             (id, customer, drink, size, request_id, claim_token, placed_at, status) \
             SELECT id, customer, drink, size, request_id, claim_token, placed_at, 1 \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[], \
                         $7::text[], $8::bigint[]) WITH ORDINALITY \
                  AS new (id, customer, drink, size, request_id, claim_token, placed_at, n) \
             ORDER BY n \
             ON CONFLICT (customer, request_id) WHERE request_id IS NOT NULL DO NOTHING"
        ))
        .bind(&self.cafe)
        .bind(column(|row| &row.id))
        .bind(column(|row| &row.customer))
        .bind(column(|row| &row.drink))
        .bind(new.iter().map(|row| row.size).collect::<Vec<_>>())
        .bind(
            new.iter()
                .map(|row| row.request_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(column(|row| &row.claim_token))
        .bind(new.iter().map(|row| row.placed_at).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await
    }

    /// The orders placed with these customers' request ids, at any café
    /// (`keys`: customer and request id).
    pub async fn earlier(&self, keys: &[(&str, &str)]) -> Result<Vec<OrderRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT orders.* FROM orders \
             JOIN unnest($1::text[], $2::text[]) AS key (customer, request_id) \
               USING (customer, request_id)",
        )
        .bind(keys.iter().map(|key| key.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|key| key.1).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await
    }

    /// Takes the first queued orders of the shared line, one for each of
    /// this café's `baristas`, in one statement: `FOR UPDATE SKIP LOCKED`
    /// takes what no other café is claiming this moment, so the rows come
    /// back fewer than the baristas when the line runs short. In ticket
    /// order, the first for `baristas[0]`, the next for `baristas[1]`, and
    /// so on.
    pub async fn claim_many(
        &self,
        baristas: &[&str],
        now: SystemTime,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        let mut rows: Vec<OrderRow> = sqlx::query_as(notified!(
            "taken AS (SELECT id, ticket FROM orders WHERE status = 1 ORDER BY ticket \
                       LIMIT $3 FOR UPDATE SKIP LOCKED), \
             numbered AS (SELECT id, row_number() OVER (ORDER BY ticket) AS n FROM taken), ",
            "UPDATE orders SET status = 2, cafe_id = $1, barista = barista_of.name, \
             started_at = $4, note = NULL, version = version + 1 \
             FROM numbered JOIN unnest($2::text[]) WITH ORDINALITY AS barista_of (name, n) \
                  USING (n) \
             WHERE orders.id = numbered.id"
        ))
        .bind(&self.cafe)
        .bind(baristas)
        .bind(i64::try_from(baristas.len()).unwrap_or(i64::MAX))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        rows.sort_unstable_by_key(|row| row.order.ticket);
        Ok(rows)
    }

    /// Marks orders this café is brewing as ready (`ids`, each ready at the
    /// time beside it in `at`), in one statement. Returns the rows it
    /// changed: an order not brewing here any more (cancelled meanwhile,
    /// or returned to the line because this café was taken for dead) is
    /// not among them.
    pub async fn ready_many(&self, ids: &[&str], at: &[i64]) -> Result<Vec<OrderRow>, sqlx::Error> {
        sqlx::query_as(notified!(
            "UPDATE orders SET status = 3, ready_at = done.at, finished_at = done.at, \
             version = version + 1 \
             FROM unnest($2::text[], $3::bigint[]) AS done (id, at) \
             WHERE orders.id = done.id AND orders.status = 2 AND orders.cafe_id = $1"
        ))
        .bind(&self.cafe)
        .bind(ids)
        .bind(at)
        .fetch_all(&self.pool)
        .await
    }
}

#[cfg(test)]
mod tests;
