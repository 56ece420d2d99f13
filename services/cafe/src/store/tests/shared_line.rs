//! The orders on a shared line, as a café's baristas use them, against a
//! real PostgreSQL (a fresh database from `CAFE_TEST_DATABASE_URL`; skipped
//! without one).

use std::{sync::Arc, time::Duration};

use cafe_domain::order::NewOrder;
use grpc_serving::Critical;

use super::*;
use crate::{
    availability::Availability,
    book::{OrderEntry, Origin},
};

/// One café's orders on a fresh shared line, with the test database (kept
/// as long as it is held) and the café's upkeep.
async fn one_cafe() -> Option<(cafe_testkit::postgres::TestDatabase, Orders, Upkeep)> {
    let db = cafe_testkit::postgres::database().await?;
    let settings = BookSettings {
        queue_capacity: 16,
        finished_kept: 16,
        lease: Duration::from_secs(5),
    };
    let availability = Arc::new(Availability::new());
    let (orders, upkeep) = Orders::open(&db.url, settings, &availability, &Critical::new())
        .await
        .expect("open the shared line");
    Some((db, orders, upkeep))
}

/// A latte for `customer`, placed at `orders`.
async fn place(orders: &Orders, customer: &str) -> Arc<OrderEntry> {
    let latte = NewOrder::parse(customer, "latte", Ok(None), "").expect("a latte");
    let placed = orders.place(latte, Origin::default()).await;
    placed.expect("placed").entry
}

/// Two orders placed, and barista Ana brewing the first: Ana, her order
/// and the second.
async fn ana_brews_the_first_of_two(
    orders: &Orders,
) -> (Arc<str>, Arc<OrderEntry>, Arc<OrderEntry>) {
    let first = place(orders, "Ada").await;
    let second = place(orders, "Bob").await;
    let ana: Arc<str> = Arc::from("Ana");
    let taken = orders.claim(&ana).await.expect("the first order");
    assert_eq!(taken.id(), first.id());
    assert!(orders.start(&taken, Arc::clone(&ana)).await);
    (ana, taken, second)
}

/// What the database has of order `id`: its status number and barista.
async fn in_the_database(db_url: &str, id: &str) -> (i32, Option<String>) {
    let pool = sqlx::PgPool::connect(db_url).await.expect("connect");
    sqlx::query_as("SELECT status, barista FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("the order's row")
}

/// A barista that stays is claimed for in the statement that carries its
/// READY: once the READY is answered, its next order is already BREWING
/// by it in the database, before it asks; its next claim takes that one.
#[tokio::test]
async fn a_barista_that_stays_is_given_its_next_order_with_its_ready() {
    let Some((db, orders, _upkeep)) = one_cafe().await else {
        return;
    };
    let (ana, taken, second) = ana_brews_the_first_of_two(&orders).await;
    assert!(orders.ready_and_stay(&taken, &ana).await);

    let second_id = second.id().to_string();
    let (status, barista) = in_the_database(&db.url, &second_id).await;
    assert_eq!(
        (status, barista.as_deref()),
        (2, Some("Ana")),
        "claimed with the READY"
    );
    let next = orders.claim(&ana).await.expect("the second order");
    assert_eq!(next.id(), second.id());
}

/// A barista that stays after its café closed is given nothing more: the
/// drinks still in line are left to the other cafés.
#[tokio::test]
async fn a_barista_that_stays_at_a_closed_cafe_is_given_nothing() {
    let Some((db, orders, _upkeep)) = one_cafe().await else {
        return;
    };
    let (ana, taken, second) = ana_brews_the_first_of_two(&orders).await;
    orders.close("closing for the test");
    assert!(orders.ready_and_stay(&taken, &ana).await);
    assert!(orders.claim(&ana).await.is_none(), "the shift is over");
    let (status, barista) = in_the_database(&db.url, &second.id().to_string()).await;
    assert_eq!((status, barista), (1, None), "left in line");
}
