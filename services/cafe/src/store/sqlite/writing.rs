//! One batch of rows written to SQLite: one prepared statement per kind of
//! row, taken from the connection's cache once per batch and run for each
//! row, in the batch's order.
//!
//! Multi-row statements (`INSERT … VALUES (…), (…)`, `UPDATE … FROM
//! (VALUES …)`, `DELETE … WHERE ticket IN (…)`) were measured against
//! this and cost more, not less: SQLite materialises the `VALUES` list in
//! a temporary B-tree and opens a statement savepoint for each of them
//! (bench/results/2026-12-07-sqlitecost.md has the profile). What a row
//! costs beyond SQLite's own work is the statement cache's look-up and
//! return (a hash of the SQL text each way) and the bindings, which
//! SQLite copies: once per batch and kind for the first, once per column
//! for the second.

use rusqlite::{CachedStatement, Connection};

use super::super::{ChangedRow, NewRow, Row};

// The columns a change writes come first, in the same places in both, so
// that one function binds them ([`bind_now`]).
const INSERT: &str = "INSERT INTO orders (status, barista, started_at, ready_at, note, \
    finished_at, ticket, id, customer, drink, size, request_id, claim_token, placed_at, cafe_id) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const UPDATE: &str = "UPDATE orders SET status = ?, barista = ?, started_at = ?, \
    ready_at = ?, note = ?, finished_at = ? WHERE ticket = ?";

const DELETE: &str = "DELETE FROM orders WHERE ticket = ?";

/// Writes `rows` on `connection` in one transaction, in their order.
/// `BEGIN` and `COMMIT` are prepared statements too, not text parsed again
/// for every batch; a transaction left open by a failure is the caller's
/// to roll back.
pub(super) fn write_in(connection: &Connection, rows: &[Row<'_>]) -> Result<(), rusqlite::Error> {
    connection.prepare_cached("BEGIN")?.execute([])?;
    // Each taken from the cache at its kind's first row, and put back
    // (its bindings cleared) when the batch is written.
    let mut insert = None;
    let mut update = None;
    let mut delete = None;
    for row in rows {
        match row {
            Row::Insert(order) => bind_order(statement(connection, &mut insert, INSERT)?, order)?,
            Row::Update(change) => {
                bind_change(statement(connection, &mut update, UPDATE)?, change)?
            }
            Row::Delete(ticket) => {
                let delete = statement(connection, &mut delete, DELETE)?;
                delete.raw_bind_parameter(1, ticket)?;
                delete.raw_execute()?;
            }
        }
    }
    drop((insert, update, delete));
    connection.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

/// The statement `sql`, taken from the cache into `kept` the first time.
fn statement<'a, 'c>(
    connection: &'c Connection,
    kept: &'a mut Option<CachedStatement<'c>>,
    sql: &str,
) -> Result<&'a mut CachedStatement<'c>, rusqlite::Error> {
    if kept.is_none() {
        *kept = Some(connection.prepare_cached(sql)?);
    }
    Ok(kept.as_mut().expect("just taken"))
}

/// Binds what a change writes, the order's ticket last: the first seven
/// parameters of both [`UPDATE`] and [`INSERT`].
fn bind_now(
    statement: &mut CachedStatement<'_>,
    now: &ChangedRow<'_>,
) -> Result<(), rusqlite::Error> {
    statement.raw_bind_parameter(1, now.status)?;
    statement.raw_bind_parameter(2, now.barista)?;
    statement.raw_bind_parameter(3, now.started_at)?;
    statement.raw_bind_parameter(4, now.ready_at)?;
    statement.raw_bind_parameter(5, now.note)?;
    statement.raw_bind_parameter(6, now.finished_at)?;
    statement.raw_bind_parameter(7, now.ticket)
}

/// Writes a change.
fn bind_change(
    statement: &mut CachedStatement<'_>,
    change: &ChangedRow<'_>,
) -> Result<(), rusqlite::Error> {
    bind_now(statement, change)?;
    statement.raw_execute().map(drop)
}

/// Writes a new order.
fn bind_order(
    statement: &mut CachedStatement<'_>,
    order: &NewRow<'_>,
) -> Result<(), rusqlite::Error> {
    // A claim token is written out here, on the stack, as it is bound
    // (SQLite copies what it is given).
    let mut hex = [0u8; 32];
    bind_now(statement, &order.now)?;
    statement.raw_bind_parameter(8, order.id)?;
    statement.raw_bind_parameter(9, order.customer)?;
    statement.raw_bind_parameter(10, order.drink)?;
    statement.raw_bind_parameter(11, order.size)?;
    statement.raw_bind_parameter(12, order.request_id)?;
    statement.raw_bind_parameter(13, order.claim_token.as_str(&mut hex))?;
    statement.raw_bind_parameter(14, order.placed_at)?;
    statement.raw_bind_parameter(15, order.cafe_id)?;
    statement.raw_execute().map(drop)
}
