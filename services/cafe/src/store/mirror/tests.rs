//! Taking in a shared line's rows: newer versions only, each order at its
//! ticket, and rows this café cannot read refused.

use super::*;
use crate::availability::Availability;
use crate::store::following::catch_up;

/// A book on a shared line that is never reached: `mirror` is the
/// book's own bookkeeping, no database needed.
fn book() -> OrderBook {
    OrderBook::on_shared_line(100, Arc::new(Availability::new()), 10)
}

fn row(id: &str, ticket: i64, status: i32, version: i64) -> OrderRow {
    OrderRow {
        order: crate::store::StoredOrder {
            id: id.into(),
            ticket,
            customer: "ann".into(),
            drink: "latte".into(),
            size: 2,
            request_id: None,
            claim_token: ClaimToken::random().to_string(),
            placed_at: micros(SystemTime::now()),
            status,
            barista: (status == 2).then(|| "Ana".into()),
            started_at: None,
            ready_at: None,
            note: None,
            finished_at: None,
            cafe_id: None,
        },
        version,
    }
}

#[tokio::test]
async fn newer_rows_are_taken_in_and_older_ones_change_nothing() {
    let book = book();
    let first = mirror(&book, &row("o5", 5, 1, 0)).unwrap();
    // Another café's order with a later ticket arrived first? No
    // matter: each takes its place by ticket.
    let later = mirror(&book, &row("o7", 7, 1, 0)).unwrap();
    assert_eq!(book.position(&first), Some(1));
    assert_eq!(book.position(&later), Some(2));
    assert_eq!(
        later.subscribe().borrow()[0].queue_position,
        2,
        "its ticket"
    );

    // Claimed somewhere: it leaves the line, and the order behind moves up.
    mirror(&book, &row("o5", 5, 2, 1)).unwrap();
    assert_eq!(first.status(), OrderStatus::Brewing);
    assert_eq!(book.position(&later), Some(1));
    // The placing's echo, late: older than what the book has.
    mirror(&book, &row("o5", 5, 1, 0)).unwrap();
    assert_eq!(first.status(), OrderStatus::Brewing);
    assert_eq!(book.queue_len(), 1);

    // Handed back: first in line again, ahead of the later ticket.
    let mut back = row("o5", 5, 1, 2);
    back.order.note = Some(HANDED_BACK_NOTE.into());
    mirror(&book, &back).unwrap();
    assert_eq!(book.position(&first), Some(1));
    assert_eq!(book.position(&later), Some(2));
    assert_eq!(first.snapshot().note.as_deref(), Some(HANDED_BACK_NOTE));

    // Ready: finished, out of the line, and its history has every step.
    mirror(&book, &row("o5", 5, 3, 4)).unwrap();
    assert_eq!(first.status(), OrderStatus::Ready);
    let statuses: Vec<OrderStatus> = first
        .subscribe()
        .borrow()
        .iter()
        .map(|change| change.status)
        .collect();
    use OrderStatus::*;
    assert_eq!(statuses, [Queued, Brewing, Queued, Ready]);
    assert_eq!(book.queue_len(), 1);
}

#[tokio::test]
async fn catching_up_takes_in_what_was_missed() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .unwrap();
    let here = OrderBook::on_shared_line(100, Arc::new(Availability::new()), 10);
    let there = SharedLine::new(pool, "there");
    let new = |id: &str| NewRow {
        id: id.into(),
        customer: "ann".into(),
        drink: "latte".into(),
        size: 2,
        request_id: None,
        claim_token: ClaimToken::random().to_string(),
        placed_at: micros(SystemTime::now()),
    };
    for id in ["a", "b"] {
        let row = there.place(&new(id)).await.unwrap().row;
        mirror(&here, &row).unwrap();
    }
    // Missed while the notifications were cut: "a" was cancelled, "c"
    // placed.
    there
        .end("a", OrderStatus::Cancelled, "gone", SystemTime::now())
        .await
        .unwrap()
        .unwrap();
    there.place(&new("c")).await.unwrap();

    catch_up(&here, &there).await.unwrap();
    assert_eq!(here.get("a").unwrap().status(), OrderStatus::Cancelled);
    assert_eq!(here.position(&here.get("b").unwrap()), Some(1));
    assert_eq!(here.position(&here.get("c").unwrap()), Some(2));
}

#[tokio::test]
async fn catching_up_forgets_an_order_pruned_while_its_news_was_lost() {
    let Some(db) = cafe_testkit::postgres::database().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .unwrap();
    let here = Arc::new(OrderBook::on_shared_line(
        100,
        Arc::new(Availability::new()),
        10,
    ));
    let there = SharedLine::new(pool, "there");
    let new = |id: &str| NewRow {
        id: id.into(),
        customer: "ann".into(),
        drink: "latte".into(),
        size: 2,
        request_id: Some(format!("request-{id}")),
        claim_token: ClaimToken::random().to_string(),
        placed_at: micros(SystemTime::now()),
    };
    for id in ["a", "b"] {
        let row = there.place(&new(id)).await.unwrap().row;
        mirror(&here, &row).unwrap();
    }
    // Someone here follows "a", as a buzzer or WatchOrder would.
    let mut follower = here.follow(here.get("a").unwrap(), crate::book::Replay::FromNow);
    assert_eq!(
        follower.next().await.unwrap().unwrap().order.status,
        OrderStatus::Queued
    );
    // Missed while the notifications were cut: "a" was cancelled, then
    // pruned (retention keeps no finished order here).
    there
        .end("a", OrderStatus::Cancelled, "gone", SystemTime::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(there.prune(0).await.unwrap(), 1);

    catch_up(&here, &there).await.unwrap();
    // Gone from memory, as from the database: not found, out of the line,
    // and its follower told so rather than left waiting.
    assert!(matches!(here.get("a"), Err(CafeError::OrderNotFound(_))));
    assert_eq!(here.open_ids().len(), 1);
    assert_eq!(here.queue_len(), 1);
    assert_eq!(here.position(&here.get("b").unwrap()), Some(1));
    let told = tokio::time::timeout(std::time::Duration::from_secs(20), follower.next())
        .await
        .expect("the follower is told at once");
    assert!(matches!(told, Err(CafeError::OrderNotFound(_))), "{told:?}");
}

#[tokio::test]
async fn a_row_this_cafe_cannot_read_is_refused() {
    let book = book();
    let mut unknown = row("o1", 1, 1, 0);
    unknown.order.drink = "pumpkin-spice".into();
    assert!(mirror(&book, &unknown).unwrap_err().contains("menu"));
    let mut bad = row("o2", 2, 9, 0);
    assert!(mirror(&book, &bad).is_err());
    bad.order.status = 1;
    bad.order.claim_token = "not a token".into();
    assert!(mirror(&book, &bad).is_err());
    assert_eq!(book.queue_len(), 0);
}
