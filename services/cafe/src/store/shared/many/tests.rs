//! The batched writes against a real PostgreSQL (see `super::super::tests`
//! for how each test gets its database).

use std::{
    collections::{HashMap, HashSet},
    time::SystemTime,
};

use cafe_domain::order::OrderStatus;
use cafe_testkit::LIMIT;

use super::super::{
    CHANNEL, Notice, SharedLine, listen,
    tests::{line, new_order, two_cafes},
};

#[tokio::test]
async fn a_batch_is_one_statement_told_in_notifications_under_8000_bytes() {
    let Some((_db, pool)) = line().await else {
        return;
    };
    let mut listener = listen(&pool).await.unwrap();
    let a = SharedLine::new(pool, "a");
    let new: Vec<_> = (0..300)
        .map(|i| new_order(&format!("order-{i:03}"), &format!("customer-{i}"), None))
        .collect();

    let rows = a.place_many(&new).await.unwrap();

    assert_eq!(rows.len(), new.len());
    let mut by_ticket = rows.clone();
    by_ticket.sort_by_key(|row| row.order.ticket);
    let ids: Vec<&str> = by_ticket.iter().map(|row| row.order.id.as_str()).collect();
    let placed: Vec<&str> = new.iter().map(|order| order.id.as_str()).collect();
    assert_eq!(ids, placed, "tickets follow the batch's order");
    // Every order told once, in notifications PostgreSQL accepts (a payload
    // over 8,000 bytes fails the whole statement), so in several.
    let mut heard = HashSet::new();
    let mut notifications = 0;
    while heard.len() < rows.len() {
        let notification = tokio::time::timeout(LIMIT, listener.recv())
            .await
            .expect("the batch told in time")
            .unwrap();
        assert_eq!(notification.channel(), CHANNEL);
        assert!(notification.payload().len() < 8000);
        notifications += 1;
        for row in Notice::decode(notification.payload()).unwrap().orders {
            assert!(
                heard.insert(row.order.id.clone()),
                "{} told twice",
                row.order.id
            );
        }
    }
    let bytes: usize = rows.len() * 400;
    assert!(
        (2..=bytes / 5000 + 2).contains(&notifications),
        "{notifications} notifications for {} orders",
        rows.len()
    );
}

#[tokio::test]
async fn a_batch_with_retries_inserts_each_order_once() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };
    let first = b.place(&new_order("o1", "ann", Some("r1"))).await.unwrap();

    // Ann retries at café A; Cy sends the same request twice in one batch.
    let batch = [
        new_order("o2", "ann", Some("r1")),
        new_order("o3", "cy", Some("r2")),
        new_order("o4", "cy", Some("r2")),
        new_order("o5", "dan", None),
    ];
    let inserted = a.place_many(&batch).await.unwrap();

    let inserted: HashSet<String> = inserted.into_iter().map(|row| row.order.id).collect();
    assert_eq!(inserted, HashSet::from(["o3".to_owned(), "o5".to_owned()]));
    let earlier: HashMap<String, String> = a
        .earlier(&[("ann", "r1"), ("cy", "r2")])
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.order.customer, row.order.id))
        .collect();
    assert_eq!(earlier["ann"], first.row.order.id);
    assert_eq!(earlier["cy"], "o3");
}

#[tokio::test]
async fn batched_claims_at_two_cafes_never_take_one_order_twice() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };
    let orders = 200;
    let new: Vec<_> = (0..orders)
        .map(|i| new_order(&format!("o{i}"), "ann", None))
        .collect();
    a.place_many(&new).await.unwrap();

    // Each café claims for seven baristas at a time until the line is empty.
    let mut cafes = tokio::task::JoinSet::new();
    for cafe in [a.clone(), b.clone(), a.clone(), b] {
        cafes.spawn(async move {
            let names: Vec<String> = (0..7).map(|n| format!("{}-{n}", cafe.cafe())).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut mine = Vec::new();
            loop {
                let rows = cafe.claim_many(&names, SystemTime::now()).await.unwrap();
                if rows.is_empty() {
                    return mine;
                }
                // In ticket order, each to the barista in the same place.
                for (row, name) in rows.iter().zip(&names) {
                    assert_eq!(row.order.barista.as_deref(), Some(*name));
                    assert_eq!(row.order.status, 2);
                    assert_eq!(row.order.cafe_id.as_deref(), Some(cafe.cafe()));
                }
                assert!(
                    rows.windows(2)
                        .all(|w| w[0].order.ticket < w[1].order.ticket)
                );
                mine.extend(rows.into_iter().map(|row| row.order.id));
            }
        });
    }
    let mut claimed = HashSet::new();
    while let Some(mine) = cafes.join_next().await {
        for id in mine.unwrap() {
            assert!(claimed.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(claimed.len(), orders);
}

#[tokio::test]
async fn batched_ready_changes_only_what_this_cafe_still_brews() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };
    let new: Vec<_> = (0..3)
        .map(|i| new_order(&format!("o{i}"), "ann", None))
        .collect();
    a.place_many(&new).await.unwrap();
    a.claim_many(&["Ana", "Abe"], SystemTime::now())
        .await
        .unwrap();
    b.claim("Ben", SystemTime::now()).await.unwrap().unwrap();
    // o1 is cancelled while Abe brews it; o2 is café B's.
    a.end("o1", OrderStatus::Cancelled, "left", SystemTime::now())
        .await
        .unwrap()
        .unwrap();

    let written = a.ready_many(&["o0", "o1", "o2"], &[7, 8, 9]).await.unwrap();

    assert_eq!(written.len(), 1);
    assert_eq!(written[0].order.id, "o0");
    assert_eq!(written[0].order.status, 3);
    assert_eq!(written[0].order.ready_at, Some(7));
    let o2 = a.order("o2").await.unwrap().unwrap();
    assert_eq!(o2.order.status, 2);
}

#[tokio::test]
async fn one_cafe_at_a_time_vacuums_the_line() {
    let Some((_db, pool)) = line().await else {
        return;
    };
    let a = SharedLine::new(pool.clone(), "a");

    assert!(a.vacuum().await.unwrap());
    // The statistics may lag the vacuum by a moment.
    let counted = async {
        loop {
            let vacuumed: i64 = sqlx::query_scalar(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'orders'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if vacuumed == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(LIMIT, counted)
        .await
        .expect("the vacuum counted");

    // Another café vacuuming (its lock held elsewhere): this one leaves it.
    let mut other = pool.acquire().await.unwrap();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(super::super::VACUUM_LOCK)
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert!(locked);
    assert!(!a.vacuum().await.unwrap());
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *other)
        .await
        .unwrap();
    assert!(a.vacuum().await.unwrap());
}
