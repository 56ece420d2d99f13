//! What the fuzz targets in `fuzz/` for the calls that name an order run:
//! any bytes, decoded as tonic decodes a `GetOrderRequest`,
//! `WatchOrderRequest` or `CancelOrderRequest`, then looked up in a real
//! book through the seam ([`Orders`]) as the handlers do, and any refusal
//! turned into the status a client would receive.
//!
//! The request messages' own bodies (`OrderRequest`, `BrewRequest`) are
//! `cafe_domain::fuzz`'s, which says why the bodies live beside the code
//! and not in `fuzz/`: the unit tests below run these over the seed corpus
//! (`fuzz/corpus/get_order`, `watch_order`, `cancel_order`) on stable.
//!
//! The book is one per process, made on first use (an in-memory café with
//! an order queued, one READY and one cancelled), so a fuzzer pays for it
//! once. An id or claim token from the fuzzer finds nothing, almost
//! always; the tests send the real ones too.
//!
//! For every input: no panic; an order found is the one asked for; a
//! refusal is `NOT_FOUND` (or, for a cancel, `PERMISSION_DENIED` for a
//! wrong token and `FAILED_PRECONDITION` for a finished order), quotes at
//! most the first characters of the id, and reaches the client intact
//! (`cafe_domain::fuzz::reaches_the_client`).

use std::sync::{Arc, OnceLock};

use cafe_domain::{
    fuzz::reaches_the_client,
    order::{NewOrder, OrderStatus, QUOTED_CHARS},
    proto::v1 as pb,
};
use futures::executor::block_on;
use prost::Message;
use tonic::{Code, Status};

use crate::{
    availability::Availability,
    book::{AtTheLine, OrderBook, Origin, Replay},
    store::Orders,
};

/// The book the bodies look orders up in, and its orders' ids and claim
/// tokens: one READY, one queued, one cancelled.
struct Book {
    orders: Orders,
    /// Read by the tests, which send the ids a fuzzer would not guess.
    #[cfg_attr(not(test), allow(dead_code))]
    placed: Vec<(String, String)>,
}

fn book() -> &'static Book {
    static BOOK: OnceLock<Book> = OnceLock::new();
    BOOK.get_or_init(|| {
        let book = Arc::new(OrderBook::new(16, Arc::new(Availability::new())));
        let orders = Orders::in_memory(Arc::clone(&book));
        let place = |customer: &str| {
            let request = NewOrder::parse(customer, "latte", Ok(None), "").expect("a valid order");
            let entry = block_on(orders.place(request, Origin::default()))
                .expect("placed")
                .entry;
            let placed = (entry.id().to_string(), entry.claim_token().to_string());
            (entry, placed)
        };
        // Grace's is brewed READY, Ada's waits, Edsger's is cancelled.
        let (grace, ready) = place("Grace");
        let AtTheLine::Order(claimed) = book.claim() else {
            unreachable!("Grace's order is in line")
        };
        assert!(book.start(&claimed, "Ana".into()) && book.ready(&grace));
        let (_, queued) = place("Ada");
        let (_, cancelled) = place("Edsger");
        book.cancel(&cancelled.0, &cancelled.1, "changed their mind")
            .expect("cancelled");
        let placed = vec![ready, queued, cancelled];
        Book { orders, placed }
    })
}

/// Checks a refusal of the call that asked for `id` (see the module docs).
fn refused(status: &Status, id: &str, codes: &[Code]) {
    assert!(codes.contains(&status.code()), "{status:?}");
    if status.code() == Code::NotFound {
        let shown: String = id.chars().take(QUOTED_CHARS).collect();
        let shown = format!("{shown:?}");
        assert!(
            status.message().contains(shown.trim_end_matches('"')),
            "{status:?} does not quote the id"
        );
    }
    reaches_the_client(status);
}

/// `GetOrderRequest` (the café's `GetOrder`).
pub fn get_order(bytes: &[u8]) {
    let Ok(request) = pb::GetOrderRequest::decode(bytes) else {
        return;
    };
    match block_on(book().orders.get(&request.order_id)) {
        Ok(order) => {
            assert_eq!(order.id.to_string(), request.order_id);
            let wire = pb::Order::from(&order);
            assert_eq!(wire.id, request.order_id);
        }
        Err(error) => refused(&Status::from(error), &request.order_id, &[Code::NotFound]),
    }
}

/// `WatchOrderRequest` (the café's `WatchOrder`): found, and followed from
/// now on; the stream itself is the buzzer's, tested with real calls.
pub fn watch_order(bytes: &[u8]) {
    let Ok(request) = pb::WatchOrderRequest::decode(bytes) else {
        return;
    };
    let orders = &book().orders;
    match block_on(orders.find(&request.order_id)) {
        Ok(entry) => {
            assert_eq!(entry.id().to_string(), request.order_id);
            assert!(!orders.book().left_for_restart(&entry));
            drop(orders.book().follow(entry, Replay::FromNow));
        }
        Err(error) => refused(&Status::from(error), &request.order_id, &[Code::NotFound]),
    }
}

/// `CancelOrderRequest` (the café's `CancelOrder`).
pub fn cancel_order(bytes: &[u8]) {
    let Ok(request) = pb::CancelOrderRequest::decode(bytes) else {
        return;
    };
    let cancelled = block_on(book().orders.cancel(
        &request.order_id,
        &request.claim_token,
        "cancelled by the fuzzer",
    ));
    match cancelled {
        Ok(order) => {
            assert_eq!(order.id.to_string(), request.order_id);
            assert_eq!(order.status, OrderStatus::Cancelled);
        }
        Err(error) => refused(
            &Status::from(error),
            &request.order_id,
            &[
                Code::NotFound,
                Code::PermissionDenied,
                Code::FailedPrecondition,
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Runs `body` over every file in `fuzz/corpus/<target>`.
    fn corpus(target: &str, body: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|file| file.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        for path in files {
            println!("{}", path.display());
            body(&std::fs::read(&path).unwrap());
        }
    }

    #[test]
    fn the_get_order_corpus_passes() {
        corpus("get_order", get_order);
    }

    #[test]
    fn the_watch_order_corpus_passes() {
        corpus("watch_order", watch_order);
    }

    #[test]
    fn the_cancel_order_corpus_passes() {
        corpus("cancel_order", cancel_order);
    }

    /// The real ids and tokens, which a fuzzer would not guess: each order
    /// is found, and each cancel answered as its order's state says.
    #[test]
    fn the_book_s_own_orders_are_found_and_answered() {
        let placed = &book().placed;
        for (id, token) in placed {
            let id = id.clone();
            get_order(
                &pb::GetOrderRequest {
                    order_id: id.clone(),
                }
                .encode_to_vec(),
            );
            watch_order(
                &pb::WatchOrderRequest {
                    order_id: id.clone(),
                }
                .encode_to_vec(),
            );
            let wrong = pb::CancelOrderRequest {
                order_id: id.clone(),
                claim_token: "0".repeat(32),
            };
            cancel_order(&wrong.encode_to_vec());
            assert_eq!(token.len(), 32);
        }
        // READY cannot be cancelled; cancelling a cancelled order again
        // is what was asked for.
        for (id, token) in [&placed[0], &placed[2]] {
            let request = pb::CancelOrderRequest {
                order_id: id.clone(),
                claim_token: token.clone(),
            };
            cancel_order(&request.encode_to_vec());
        }
        let ready = block_on(book().orders.get(&placed[0].0)).unwrap();
        assert_eq!(ready.status, OrderStatus::Ready);
        let queued = block_on(book().orders.get(&placed[1].0)).unwrap();
        assert_eq!(queued.status, OrderStatus::Queued);
    }
}
