//! The shared line's SQL against a real PostgreSQL: each test gets a fresh
//! database from `CAFE_TEST_DATABASE_URL` (see `cafe_testkit::postgres`) and
//! plays several cafés on it.

use std::{collections::HashSet, time::SystemTime};

use cafe_testkit::{LIMIT, postgres::TestDatabase};
use sqlx::postgres::PgPoolOptions;

use super::*;

/// A migrated database and a pool on it, or `None` when the tests are
/// skipped (no PostgreSQL named).
pub(super) async fn line() -> Option<(TestDatabase, PgPool)> {
    let db = cafe_testkit::postgres::database().await?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&db.url)
        .await
        .expect("connect to the test database");
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .expect("migrate");
    Some((db, pool))
}

/// [`line`], with two cafés on it: `a` and `b`.
pub(super) async fn two_cafes() -> Option<(TestDatabase, SharedLine, SharedLine)> {
    let (db, pool) = line().await?;
    Some((
        db,
        SharedLine::new(pool.clone(), "a"),
        SharedLine::new(pool, "b"),
    ))
}

pub(super) fn new_order(id: &str, customer: &str, request_id: Option<&str>) -> NewRow {
    NewRow {
        id: id.into(),
        customer: customer.into(),
        drink: "latte".into(),
        size: 2,
        request_id: request_id.map(Into::into),
        claim_token: format!("token-of-{id}"),
        placed_at: micros(SystemTime::now()),
    }
}

#[tokio::test]
async fn tickets_are_one_numbering_and_a_retry_at_another_cafe_gets_the_first_order() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };

    let first = a.place(&new_order("o1", "ann", Some("r1"))).await.unwrap();
    let second = b.place(&new_order("o2", "bob", None)).await.unwrap();
    assert!(first.is_new && second.is_new);
    assert!(first.row.order.ticket < second.row.order.ticket);
    assert_eq!(first.row.order.status, 1);
    assert_eq!(first.row.version, 0);
    assert_eq!(first.row.order.claim_token, "token-of-o1");

    // Ann retries at café B with the same request id: the order placed at A.
    let retry = b.place(&new_order("o3", "ann", Some("r1"))).await.unwrap();
    assert!(!retry.is_new);
    assert_eq!(retry.row, first.row);
    // Another customer may use the same request id.
    let other = b.place(&new_order("o4", "cy", Some("r1"))).await.unwrap();
    assert!(other.is_new);

    let open: Vec<String> = a
        .open_orders()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.order.id)
        .collect();
    assert_eq!(open, ["o1", "o2", "o4"]);
}

#[tokio::test]
async fn many_baristas_at_two_cafes_never_claim_one_order_twice() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };
    let orders = 60;
    for i in 0..orders {
        a.place(&new_order(&format!("o{i}"), "ann", None))
            .await
            .unwrap();
    }

    // Eight baristas, four at each café, claim until the line is empty.
    let mut baristas = tokio::task::JoinSet::new();
    for n in 0..8 {
        let cafe = if n % 2 == 0 { a.clone() } else { b.clone() };
        baristas.spawn(async move {
            let mut mine = Vec::new();
            while let Some(row) = cafe
                .claim(&format!("barista-{n}"), SystemTime::now())
                .await
                .unwrap()
            {
                assert_eq!(row.order.status, 2);
                assert_eq!(row.order.cafe_id.as_deref(), Some(cafe.cafe()));
                mine.push((row.order.ticket, row.order.id));
            }
            mine
        });
    }
    let mut claimed = HashSet::new();
    while let Some(mine) = baristas.join_next().await {
        let mine = mine.unwrap();
        // Each barista's claims come in ticket order: first come, first served.
        assert!(
            mine.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "{mine:?}"
        );
        for (_, id) in mine {
            assert!(claimed.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(claimed.len(), orders);
    assert!(a.claim("late", SystemTime::now()).await.unwrap().is_none());
}

#[tokio::test]
async fn every_write_is_heard_by_the_other_cafes_once_committed() {
    let Some((_db, pool)) = line().await else {
        return;
    };
    let mut listener = listen(&pool).await.unwrap();
    let a = SharedLine::new(pool.clone(), "a");

    let placed = a
        .place(&new_order("o1", "ann", Some("r1")))
        .await
        .unwrap()
        .row;
    let claimed = a.claim("Ana", SystemTime::now()).await.unwrap().unwrap();
    let ready = a.ready("o1", SystemTime::now()).await.unwrap().unwrap();
    // A retry that conflicts writes nothing, so tells nobody anything.
    a.place(&new_order("o2", "ann", Some("r1"))).await.unwrap();
    let cancelled_queued = {
        let o3 = a.place(&new_order("o3", "bob", None)).await.unwrap().row;
        let end = a.end(
            "o3",
            OrderStatus::Cancelled,
            "changed my mind",
            SystemTime::now(),
        );
        (o3, end.await.unwrap().unwrap())
    };

    let mut heard = Vec::new();
    for _ in 0..5 {
        let notification = tokio::time::timeout(LIMIT, listener.recv())
            .await
            .expect("a notification in time")
            .unwrap();
        assert_eq!(notification.channel(), CHANNEL);
        assert!(Notice::is_from(notification.payload(), "a"));
        assert!(!Notice::is_from(notification.payload(), "b"));
        let notice = Notice::decode(notification.payload()).unwrap();
        assert_eq!(notice.cafe, "a");
        // One write, one order: one notification carrying it.
        assert_eq!(notice.orders.len(), 1);
        heard.extend(notice.orders);
    }
    assert_eq!(
        heard,
        [
            placed,
            claimed.clone(),
            ready.clone(),
            cancelled_queued.0,
            cancelled_queued.1.clone()
        ]
    );
    assert_eq!((claimed.version, ready.version), (1, 2));
    assert_eq!(ready.order.status, 3);
    assert_eq!(ready.order.ready_at, ready.order.finished_at);
    assert_eq!(cancelled_queued.1.order.status, 4);
    assert_eq!(
        cancelled_queued.1.order.note.as_deref(),
        Some("changed my mind")
    );
}

#[tokio::test]
async fn a_write_whose_guard_no_longer_holds_changes_nothing() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };
    a.place(&new_order("o1", "ann", None)).await.unwrap();
    a.claim("Ana", SystemTime::now()).await.unwrap().unwrap();

    // Only the café brewing it may say it is ready, or brew it again.
    assert_eq!(b.ready("o1", SystemTime::now()).await.unwrap(), None);
    assert_eq!(
        b.rebrew("o1", "Ben", SystemTime::now()).await.unwrap(),
        None
    );
    let rebrewed = a
        .rebrew("o1", "Abe", SystemTime::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rebrewed.order.barista.as_deref(), Some("Abe"));

    // Any café may cancel it while it is open; once, and then nothing else.
    let cancelled = b.end("o1", OrderStatus::Cancelled, "gone", SystemTime::now());
    assert_eq!(cancelled.await.unwrap().unwrap().order.status, 4);
    let again = b.end("o1", OrderStatus::Failed, "too late", SystemTime::now());
    assert_eq!(again.await.unwrap(), None);
    assert_eq!(a.ready("o1", SystemTime::now()).await.unwrap(), None);
    assert_eq!(a.note("o1", "late news").await.unwrap(), None);
    assert_eq!(a.order("o1").await.unwrap().unwrap().order.status, 4);
}

#[tokio::test]
async fn a_silent_cafes_brewing_orders_go_back_to_the_head_of_the_line() {
    let Some((_db, pool)) = line().await else {
        return;
    };
    let (a, b) = (
        SharedLine::new(pool.clone(), "a"),
        SharedLine::new(pool.clone(), "b"),
    );
    a.heartbeat().await.unwrap();
    b.heartbeat().await.unwrap();
    for i in 0..4 {
        a.place(&new_order(&format!("o{i}"), "ann", None))
            .await
            .unwrap();
    }
    let taken = [
        a.claim("Ana", SystemTime::now()).await.unwrap().unwrap(),
        a.claim("Abe", SystemTime::now()).await.unwrap().unwrap(),
    ];
    b.claim("Ben", SystemTime::now()).await.unwrap().unwrap();

    // Nobody is silent yet: nothing comes back.
    assert!(b.expire_leases(DEFAULT_LEASE).await.unwrap().is_empty());

    // Café A has said nothing for a minute (the heartbeat is moved back
    // rather than waited for: the lease is the database's arithmetic).
    sqlx::query("UPDATE cafes SET heartbeat_at = heartbeat_at - 60000000 WHERE id = 'a'")
        .execute(&pool)
        .await
        .unwrap();
    let back = b.expire_leases(DEFAULT_LEASE).await.unwrap();
    let mut back_ids: Vec<&str> = back.iter().map(|row| row.order.id.as_str()).collect();
    back_ids.sort_unstable();
    assert_eq!(
        back_ids,
        [taken[0].order.id.as_str(), taken[1].order.id.as_str()]
    );
    for row in &back {
        assert_eq!(
            (
                row.order.status,
                row.order.cafe_id.as_deref(),
                row.order.barista.as_deref()
            ),
            (1, None, None)
        );
        assert_eq!(row.order.note.as_deref(), Some(LEASE_EXPIRED_NOTE));
    }
    // A second café running the same sweep finds nothing more to do.
    assert!(b.expire_leases(DEFAULT_LEASE).await.unwrap().is_empty());

    // They kept their tickets: B's next claims take them first.
    let next = b.claim("Ben", SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(next.order.id, taken[0].order.id);
    // A, alive after all, may no longer finish what it lost.
    assert_eq!(
        a.ready(&taken[1].order.id, SystemTime::now())
            .await
            .unwrap(),
        None
    );
    // Its next heartbeat joins it again.
    a.heartbeat().await.unwrap();
    let cafes: i64 = sqlx::query_scalar("SELECT count(*) FROM cafes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(cafes, 2);
}

#[tokio::test]
async fn orders_of_a_cafe_that_left_without_handing_back_are_returned() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };
    a.heartbeat().await.unwrap();
    b.heartbeat().await.unwrap();
    a.place(&new_order("o1", "ann", None)).await.unwrap();
    a.claim("Ana", SystemTime::now()).await.unwrap().unwrap();
    a.leave().await.unwrap();
    let back = b.expire_leases(DEFAULT_LEASE).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].order.status, 1);
}

#[tokio::test]
async fn a_stopping_cafe_hands_back_what_it_could_not_finish() {
    let Some((_db, a, b)) = two_cafes().await else {
        return;
    };
    for i in 0..3 {
        a.place(&new_order(&format!("o{i}"), "ann", None))
            .await
            .unwrap();
    }
    let first = a.claim("Ana", SystemTime::now()).await.unwrap().unwrap();
    let second = a.claim("Abe", SystemTime::now()).await.unwrap().unwrap();
    let third = b.claim("Ben", SystemTime::now()).await.unwrap().unwrap();

    let one = a
        .hand_back(Some(&second.order.id), HANDED_BACK_NOTE)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].order.ticket, second.order.ticket);
    let rest = a.hand_back(None, HANDED_BACK_NOTE).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].order.id, first.order.id);
    assert_eq!(rest[0].order.note.as_deref(), Some(HANDED_BACK_NOTE));
    // B's order is not A's to hand back.
    assert_eq!(
        a.order(&third.order.id)
            .await
            .unwrap()
            .unwrap()
            .order
            .status,
        2
    );
    let open: Vec<(String, i32)> = b
        .open_orders()
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.order.id, row.order.status))
        .collect();
    assert_eq!(
        open,
        [
            (first.order.id, 1),
            (second.order.id, 1),
            (third.order.id, 2)
        ]
    );
}

#[test]
fn a_notice_is_read_from_the_json_postgres_writes() {
    // What `row_to_json` makes of a row: every column by name, BIGINTs as
    // numbers, NULLs as null.
    let payload = r#"{"cafe":"a","orders":[{"id":"o1","ticket":7,"customer":"ann","drink":"latte","size":2,"request_id":null,"claim_token":"t","placed_at":1764640000000000,"status":1,"barista":null,"started_at":null,"ready_at":null,"note":null,"finished_at":null,"cafe_id":null,"version":0}]}"#;
    let notice = Notice::decode(payload).unwrap();
    assert_eq!(notice.cafe, "a");
    assert_eq!(notice.orders[0].order.ticket, 7);
    assert_eq!(notice.orders[0].order.placed_at, 1_764_640_000_000_000);
    assert!(Notice::is_from(payload, "a"));
    assert!(!Notice::is_from(payload, "b"));
    assert!(Notice::decode(r#"{"cafe":"a"}"#).is_err());
}
