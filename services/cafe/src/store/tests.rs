//! The store's tests, on SQLite files in a temporary directory: the schema,
//! the journal's writer, and a book written down and rebuilt from what it
//! wrote (the restart semantics, without a process to kill; the real
//! `kill -9` is in `tests/restart.rs`). The file and its schema here; the
//! journal and the book it writes down in [`journal`]; the orders on a
//! shared line, on PostgreSQL, in [`shared_line`].

mod journal;
mod shared_line;

use cafe_domain::order::OrderStatus;
use tempfile::TempDir;

use super::*;

/// A fresh SQLite store in its own directory (kept as long as the
/// `TempDir`), at a path whose directory does not exist yet.
async fn sqlite() -> (TempDir, String, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/cafe.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    (dir, url, store)
}

fn row(id: &str, ticket: i64, status: OrderStatus) -> StoredOrder {
    StoredOrder {
        id: id.into(),
        ticket,
        customer: "Ada".into(),
        drink: "latte".into(),
        size: 2,
        request_id: None,
        claim_token: "0123456789abcdef0123456789abcdef".into(),
        placed_at: 1_000 + ticket,
        status: status_number(status),
        barista: None,
        started_at: None,
        ready_at: None,
        note: None,
        finished_at: status.is_final().then_some(5_000 - ticket),
        cafe_id: None,
    }
}

#[tokio::test]
async fn a_store_is_created_with_its_directory_and_opened_again() {
    let (dir, url, store) = sqlite().await;
    assert!(dir.path().join("data/cafe.db").exists());
    assert!(store.is_durable());
    assert!(store.describe().contains("cafe.db"));
    // Closed, not only dropped, so the lock is let go before the second
    // open (see `a_rebuilt_book_keeps_every_orders_promise`).
    store.close();
    // The migrations are versioned: a second start runs none again.
    let again = Store::open(&url).await.unwrap();
    assert!(again.recover().await.unwrap().open.is_empty());
}

#[tokio::test]
async fn one_cafe_per_file() {
    let (_dir, url, first) = sqlite().await;
    // A second café on the same file would hand out the same tickets: it
    // cannot open it while the first holds it.
    let second = Store::open(&url).await;
    assert!(second.is_err(), "the file is the first café's");
    drop(first);
}

#[tokio::test]
async fn urls_name_the_store() {
    assert!(!Store::open("memory").await.unwrap().is_durable());
    assert!(!Store::open("memory:").await.unwrap().is_durable());
    let error = Store::open("mysql://root@db/cafe").await.unwrap_err();
    assert!(
        error.to_string().contains("sqlite://FILE"),
        "says what to give: {error}"
    );
    assert_eq!(
        redact("postgres://cafe:secret@db:5432/cafe"),
        "postgres://cafe:***@db:5432/cafe"
    );
    assert_eq!(redact("postgres://cafe@db/cafe"), "postgres://cafe@db/cafe");
}

#[tokio::test]
async fn rows_come_back_open_in_ticket_order_and_finished_oldest_first() {
    let (_dir, _url, store) = sqlite().await;
    let mut rows = [
        row("ord-c", 7, OrderStatus::Queued),
        row("ord-a", 2, OrderStatus::Brewing),
        row("ord-r", 3, OrderStatus::Ready),
        row("ord-x", 4, OrderStatus::Cancelled),
        row("ord-gone", 5, OrderStatus::Failed),
    ];
    rows[0].request_id = Some("retry-1".into());
    let brewing = StoredChange {
        ticket: 2,
        status: status_number(OrderStatus::Brewing),
        barista: Some("Ana".into()),
        started_at: Some(1_500),
        ready_at: None,
        note: None,
        finished_at: None,
    };
    let mut records: Vec<Row<'_>> = rows.iter().map(StoredOrder::row).collect();
    records.push(brewing.row());
    records.push(Row::Delete(5));
    store.write(&records).unwrap();

    let recovered = store.recover().await.unwrap();
    let ids = |rows: &[StoredOrder]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&recovered.open), ["ord-a", "ord-c"]);
    // ord-x finished at 4996, ord-r at 4997.
    assert_eq!(ids(&recovered.finished), ["ord-x", "ord-r"]);
    assert_eq!(recovered.open[0].barista.as_deref(), Some("Ana"));
    assert_eq!(recovered.open[1], rows[0], "a row reads back as written");
    // Ticket 5 was forgotten, but 7 was the highest given.
    assert_eq!(recovered.next_ticket, 8);
}

/// A file as a café made it before rows were keyed by ticket: the first
/// migration only, with orders in it, open and finished.
async fn file_of_the_first_schema(dir: &std::path::Path) -> String {
    use std::str::FromStr;

    use sqlx::{
        ConnectOptions, Connection,
        sqlite::{SqliteConnectOptions, SqliteJournalMode},
    };
    let migrations = dir.join("first-schema");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("0001_orders.sql"),
        include_str!("../../migrations/sqlite/0001_orders.sql"),
    )
    .unwrap();
    let url = format!("sqlite://{}/cafe.db", dir.display());
    let mut old = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(migrations.as_path())
        .await
        .unwrap()
        .run(&mut old)
        .await
        .unwrap();
    for (id, ticket, status, request_id) in [
        ("ord-queued", 7, OrderStatus::Queued, Some("retry-1")),
        ("ord-brewing", 4, OrderStatus::Brewing, None),
        ("ord-ready", 2, OrderStatus::Ready, Some("retry-2")),
    ] {
        let row = row(id, ticket, status);
        sqlx::query(&format!(
            "INSERT INTO orders ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&row.id)
        .bind(row.ticket)
        .bind(&row.customer)
        .bind(&row.drink)
        .bind(row.size)
        .bind(request_id)
        .bind(&row.claim_token)
        .bind(row.placed_at)
        .bind(row.status)
        .bind(&row.barista)
        .bind(row.started_at)
        .bind(row.ready_at)
        .bind(&row.note)
        .bind(row.finished_at)
        .bind(&row.cafe_id)
        .execute(&mut old)
        .await
        .unwrap();
    }
    old.close().await.unwrap();
    url
}

#[tokio::test]
async fn a_file_of_the_first_schema_opens_with_every_order() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_of_the_first_schema(dir.path()).await;

    let store = Store::open(&url).await.expect("an old file opens");
    let recovered = store.recover().await.unwrap();
    let ids = |rows: &[StoredOrder]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&recovered.open), ["ord-brewing", "ord-queued"]);
    assert_eq!(ids(&recovered.finished), ["ord-ready"]);
    assert_eq!(recovered.open[1].request_id.as_deref(), Some("retry-1"));
    assert_eq!(recovered.next_ticket, 8);

    // Its rows are written by ticket from now on, and idempotency still
    // holds in the file: one order per customer and request id.
    let ready = StoredChange {
        ticket: 4,
        status: status_number(OrderStatus::Ready),
        barista: Some("Ana".into()),
        started_at: Some(1_500),
        ready_at: Some(1_600),
        note: None,
        finished_at: Some(1_600),
    };
    store.write(&[ready.row(), Row::Delete(2)]).unwrap();
    let mut twin = row("ord-twin", 9, OrderStatus::Queued);
    twin.request_id = Some("retry-1".into());
    assert!(store.write(&[twin.row()]).is_err());
    let recovered = store.recover().await.unwrap();
    assert_eq!(ids(&recovered.open), ["ord-queued"]);
    assert_eq!(ids(&recovered.finished), ["ord-brewing"]);
}

#[tokio::test]
async fn a_failed_batch_writes_nothing() {
    let (_dir, _url, store) = sqlite().await;
    store
        .write(&[row("ord-a", 1, OrderStatus::Queued).row()])
        .unwrap();
    // The second insert reuses the ticket: the whole batch is refused.
    let (b, c) = (
        row("ord-b", 2, OrderStatus::Queued),
        row("ord-c", 1, OrderStatus::Queued),
    );
    assert!(store.write(&[b.row(), c.row()]).is_err());
    assert_eq!(store.recover().await.unwrap().open.len(), 1);
}
