//! The shared line's writes for many orders at once: whatever a café has
//! to write (new orders, READYs, claims for its idle baristas) goes in
//! **one statement**, so one transaction and one notification, whatever
//! the number of orders. That is how a line of thousands of orders a
//! second costs PostgreSQL hundreds of commits, not thousands: and
//! notifying commits are what PostgreSQL serializes (one global lock from
//! a notifying transaction's commit until its WAL is flushed), so each
//! one saved is a disk flush no other café waits behind.
//! [`super::super::batches`] gathers the requests.

use std::time::SystemTime;

use super::{NewRow, OrderRow, SharedLine};
use crate::store::micros;

/// What one café writes in one statement.
#[derive(Debug, Default, Clone, Copy)]
pub struct Writes<'a> {
    /// New orders, placed in this order.
    pub placed: &'a [NewRow],
    /// Orders this café brewed, READY: their ids…
    pub ready: &'a [&'a str],
    /// …and when each was ready (microseconds since the Unix epoch).
    pub ready_at: &'a [i64],
    /// Idle baristas, each to be given the next queued order.
    pub claims_for: &'a [&'a str],
}

/// What one statement wrote, by kind.
#[derive(Debug, Default)]
pub struct Written {
    /// The orders placed: an order whose customer and request id match an
    /// earlier one (at any café, or earlier in the batch) is not among
    /// them ([`SharedLine::earlier`] finds what it matched).
    pub placed: Vec<OrderRow>,
    /// The orders made READY: one not brewing here any more (cancelled
    /// meanwhile, or returned to the line because this café was taken for
    /// dead) is not among them.
    pub ready: Vec<OrderRow>,
    /// The orders claimed, in ticket order, the first for `claims_for[0]`,
    /// the next for `claims_for[1]`, and so on: fewer than the baristas
    /// when the line runs short.
    pub claimed: Vec<OrderRow>,
}

impl SharedLine {
    /// Writes `writes` in one statement:
    /// - placing is an `INSERT` of them all, in order, one sequence
    ///   numbering every café's tickets; `ON CONFLICT (customer,
    ///   request_id) DO NOTHING` leaves a retry out;
    /// - READY an `UPDATE` guarded by the order still brewing here;
    /// - claiming an `UPDATE` of the first queued rows `FOR UPDATE SKIP
    ///   LOCKED`, each written to its barista by name: two cafés claiming
    ///   at once lock different rows, so no drink is brewed twice and
    ///   nobody queues behind a lock. (It cannot take an order placed in
    ///   the same statement: every part sees the line as it was before.)
    pub async fn write_many(
        &self,
        writes: Writes<'_>,
        now: SystemTime,
    ) -> Result<Written, sqlx::Error> {
        let new = writes.placed;
        let column = |field: fn(&NewRow) -> &str| new.iter().map(field).collect::<Vec<_>>();
        let rows: Vec<OrderRow> = sqlx::query_as(notified!(
            rows: "placed AS (INSERT INTO orders \
                       (id, customer, drink, size, request_id, claim_token, placed_at, status) \
                   SELECT id, customer, drink, size, request_id, claim_token, placed_at, 1 \
                   FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[], \
                               $7::text[], $8::bigint[]) WITH ORDINALITY \
                        AS new (id, customer, drink, size, request_id, claim_token, placed_at, n) \
                   ORDER BY n \
                   ON CONFLICT (customer, request_id) WHERE request_id IS NOT NULL DO NOTHING \
                   RETURNING orders.*), \
             made AS (UPDATE orders SET status = 3, ready_at = done.at, finished_at = done.at, \
                          version = version + 1 \
                      FROM unnest($9::text[], $10::bigint[]) AS done (id, at) \
                      WHERE orders.id = done.id AND orders.status = 2 AND orders.cafe_id = $1 \
                      RETURNING orders.*), \
             taken AS (SELECT id, ticket FROM orders WHERE status = 1 ORDER BY ticket \
                       LIMIT $12 FOR UPDATE SKIP LOCKED), \
             numbered AS (SELECT id, row_number() OVER (ORDER BY ticket) AS n FROM taken), \
             claimed AS (UPDATE orders SET status = 2, cafe_id = $1, barista = barista_of.name, \
                             started_at = $13, note = NULL, version = version + 1 \
                         FROM numbered \
                              JOIN unnest($11::text[]) WITH ORDINALITY AS barista_of (name, n) \
                              USING (n) \
                         WHERE orders.id = numbered.id \
                         RETURNING orders.*), ",
            "SELECT * FROM placed UNION ALL SELECT * FROM made UNION ALL SELECT * FROM claimed"
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
        .bind(writes.ready)
        .bind(writes.ready_at)
        .bind(writes.claims_for)
        .bind(i64::try_from(writes.claims_for.len()).unwrap_or(i64::MAX))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        // Each part leaves its rows in a status of its own.
        let mut written = Written::default();
        for row in rows {
            match row.order.status {
                1 => written.placed.push(row),
                2 => written.claimed.push(row),
                _ => written.ready.push(row),
            }
        }
        written.claimed.sort_unstable_by_key(|row| row.order.ticket);
        Ok(written)
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
}

/// One kind of write at a time: how the tests state what each part of
/// [`SharedLine::write_many`] guarantees. (The café writes every kind
/// together, through its counter.)
#[cfg(test)]
impl SharedLine {
    /// Places `new` orders at the end of the shared line ([`Writes::placed`]).
    pub async fn place_many(&self, new: &[NewRow]) -> Result<Vec<OrderRow>, sqlx::Error> {
        let writes = Writes {
            placed: new,
            ..Writes::default()
        };
        Ok(self.write_many(writes, SystemTime::now()).await?.placed)
    }

    /// Takes the first queued orders of the shared line, one for each of
    /// this café's `baristas` ([`Written::claimed`]).
    pub async fn claim_many(
        &self,
        baristas: &[&str],
        now: SystemTime,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        let writes = Writes {
            claims_for: baristas,
            ..Writes::default()
        };
        Ok(self.write_many(writes, now).await?.claimed)
    }

    /// Marks orders this café is brewing as ready, each at the time beside
    /// it in `at` ([`Written::ready`]).
    pub async fn ready_many(&self, ids: &[&str], at: &[i64]) -> Result<Vec<OrderRow>, sqlx::Error> {
        let writes = Writes {
            ready: ids,
            ready_at: at,
            ..Writes::default()
        };
        Ok(self.write_many(writes, SystemTime::now()).await?.ready)
    }

    /// Takes the first queued order of the shared line for `barista` of
    /// this café, or `None` if nothing is queued (or every queued order is
    /// being claimed by someone else this moment).
    pub async fn claim(
        &self,
        barista: &str,
        now: SystemTime,
    ) -> Result<Option<OrderRow>, sqlx::Error> {
        Ok(self.claim_many(&[barista], now).await?.pop())
    }

    /// Marks an order this café is brewing as ready. `None` if it is not
    /// brewing here any more (cancelled meanwhile, or returned to the line
    /// because this café was taken for dead).
    pub async fn ready(&self, id: &str, now: SystemTime) -> Result<Option<OrderRow>, sqlx::Error> {
        Ok(self.ready_many(&[id], &[micros(now)]).await?.pop())
    }
}

#[cfg(test)]
mod tests;
