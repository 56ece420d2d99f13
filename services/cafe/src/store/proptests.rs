//! The book's property test on the SQLite journal: any story
//! (`book::proptests`) told to a book that writes every change to a real
//! SQLite file through the journal's writer, flushed after each step, so
//! a follower yields a change once it is durable, as a customer is told
//! it. The book's promises hold as on the memory store; and at the end
//! the file holds exactly what the book remembers (every order, at its
//! ticket, with its status), and a book restored from it, as a restart
//! does, has every order back: the finished as they were, the open ones
//! QUEUED in ticket order.
//!
//! The writer runs on a current-thread runtime of the test's own, only
//! while the story waits for a flush; everything else runs outside it,
//! as the book's own property test does.

use std::{collections::HashMap, sync::Arc};

use cafe_domain::order::OrderStatus;
use proptest::prelude::*;

use super::*;
use crate::{
    availability::Availability,
    book::{
        OrderBook,
        proptests::{Keeping, config, step, tell},
    },
};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_interleaving_is_kept_in_sqlite_as_the_book_has_it(
        queue_capacity in 1..6usize,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/cafe.db", dir.path().display());
        let store = runtime.block_on(Store::open(&url)).unwrap();
        let journal = Arc::new(Journal::new());
        // The store never fails here: nothing turns this café away.
        let writer = runtime.spawn(journal::write(
            Arc::clone(&journal),
            store,
            Arc::new(Availability::new()),
        ));
        let flush = {
            let (runtime, journal) = (Arc::clone(&runtime), Arc::clone(&journal));
            Box::new(move || runtime.block_on(journal.flushed()))
        };
        let keeping = Keeping { recorder: Arc::clone(&journal) as _, flush };
        let cafe = tell(queue_capacity, &steps, Some(keeping));
        journal.close();
        runtime.block_on(writer).unwrap();

        // The file holds what the book remembers.
        let store = runtime.block_on(Store::open(&url)).unwrap();
        let recovered = runtime.block_on(store.recover()).unwrap();
        let rows: HashMap<String, StoredOrder> = recovered
            .open
            .iter()
            .chain(&recovered.finished)
            .map(|row| (row.id.clone(), row.clone()))
            .collect();
        prop_assert_eq!(rows.len(), cafe.entries().count());
        for entry in cafe.entries() {
            let row = &rows[entry.id().as_str()];
            prop_assert_eq!(row.status(), Some(entry.status()), "{}", entry.id());
            prop_assert_eq!(row.ticket, i64::try_from(entry.ticket()).unwrap());
        }

        // A restart brings every order back.
        let restored = OrderBook::new(1_000, Arc::new(Availability::new()));
        let open_tickets: Vec<i64> = recovered.open.iter().map(|row| row.ticket).collect();
        rows::restore(&restored, recovered);
        let mut line = Vec::new();
        for entry in cafe.entries() {
            let back = restored.get(entry.id().as_str()).unwrap();
            let expected = match entry.status() {
                OrderStatus::Brewing => OrderStatus::Queued,
                status => status,
            };
            prop_assert_eq!(back.status(), expected, "{}", entry.id());
            if let Some(place) = restored.position(&back) {
                line.push((place, i64::try_from(back.ticket()).unwrap()));
            }
        }
        line.sort();
        let tickets: Vec<i64> = line.into_iter().map(|(_, ticket)| ticket).collect();
        prop_assert_eq!(tickets, open_tickets, "the line, in ticket order");
        store.close();
    }
}
