//! What the fuzz targets in `fuzz/` for the request messages run (those
//! for the calls that name an order are the café's, `cafe_server::fuzz`,
//! as only the café's book can look an order up): any bytes, decoded as a request
//! message the way tonic decodes it, then checked the way the servers check
//! it, and a refusal turned into the status a client would receive.
//!
//! # Why the bodies live here
//!
//! `cargo fuzz` builds `fuzz/` with libFuzzer and sanitizers, which needs a
//! nightly compiler (or `RUSTC_BOOTSTRAP=1`), so `fuzz/` is not in the
//! workspace and CI's `cargo test` never builds it. Each target there is
//! one line calling a function here; the unit tests below call the same
//! functions over the seed corpus (`fuzz/corpus/`), so on stable every
//! change to decoding or validation still runs what the fuzzer found worth
//! keeping, and a target that stopped compiling would show here first.
//!
//! # What each target promises
//!
//! For every input: no panic; bytes that are not the message are refused
//! by prost (as tonic would, with a status) before any of our code runs. A
//! request that is accepted is one the café can serve (a name of 1 to 64
//! characters with no control characters, a drink on the menu in a size it
//! comes in). A request that is refused names every wrong field: each
//! violation's field is one of the message's, and its sentence says that
//! field's name; the status is `INVALID_ARGUMENT`, its message short
//! enough to travel in a trailer ([`MAX_STATUS_MESSAGE_BYTES`]), and it
//! survives the trip through `grpc-message` (percent-encoded) and
//! `grpc-status-details-bin` exactly, `BadRequest` details and all.

use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    order::{Cup, FieldViolation, MAX_CUSTOMER_CHARS, MAX_REQUEST_ID_CHARS, NewOrder},
    proto::v1 as pb,
    status::invalid_argument,
};

/// The longest status message a refusal may carry, in bytes before
/// percent-encoding. Far below the 16 KiB of headers a client accepts by
/// default (hyper's and h2's `max_header_list_size`), even encoded (at most
/// three bytes for one) and with its `BadRequest` detail beside it, so a
/// refusal always reaches the client as itself rather than as a protocol
/// error.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 2048;

/// `OrderRequest` (the café's `OrderCoffee` and `OrderWithBuzzer`): decoded
/// and checked as the café does ([`NewOrder`] via [`crate::convert`]).
pub fn order_request(bytes: &[u8]) {
    let Ok(request) = pb::OrderRequest::decode(bytes) else {
        return;
    };
    match NewOrder::try_from(&request) {
        Ok(order) => {
            let name = order.customer.as_str();
            assert_eq!(name, request.customer, "the name is kept exactly");
            let chars = name.chars().count();
            assert!((1..=MAX_CUSTOMER_CHARS).contains(&chars), "{name:?}");
            assert!(!name.trim().is_empty() && !name.chars().any(char::is_control));
            assert_eq!(order.drink.id, request.drink);
            assert!(order.drink.sizes.contains(&order.size));
            let request_id = order.request_id.as_deref().unwrap_or_default();
            assert_eq!(request_id, request.request_id);
            assert!(request_id.chars().count() <= MAX_REQUEST_ID_CHARS);
        }
        Err(violations) => refused(&violations, &["customer", "drink", "size", "request_id"]),
    }
}

/// `BrewRequest` (a barista's `Brew`): decoded and checked as the barista
/// does ([`Cup`]).
pub fn brew_request(bytes: &[u8]) {
    let Ok(request) = pb::BrewRequest::decode(bytes) else {
        return;
    };
    match Cup::try_from(&request) {
        Ok(cup) => {
            assert_eq!(cup.drink.id, request.drink);
            assert!(cup.drink.sizes.contains(&cup.size));
        }
        Err(violations) => refused(&violations, &["drink", "size"]),
    }
}

/// Checks that `status` reaches a client as itself: a message short
/// enough to travel in a trailer ([`MAX_STATUS_MESSAGE_BYTES`]), written
/// into the trailers as a server writes it and read back as a client reads
/// it, code and message unchanged. Returns what the client read.
pub fn reaches_the_client(status: &Status) -> Status {
    assert!(
        status.message().len() <= MAX_STATUS_MESSAGE_BYTES,
        "a {}-byte status message",
        status.message().len()
    );
    let mut trailers = http::HeaderMap::new();
    status
        .add_header(&mut trailers)
        .expect("every status fits in a header");
    let received = Status::from_header_map(&trailers).expect("a status in the trailers");
    assert_eq!(received.code(), status.code());
    assert_eq!(received.message(), status.message(), "grpc-message");
    received
}

/// Checks a refusal of a message whose fields are `fields`, and the status
/// a client receives for it (see the module docs).
fn refused(violations: &[FieldViolation], fields: &[&str]) {
    assert!(!violations.is_empty(), "a refusal says why");
    for violation in violations {
        assert!(fields.contains(&violation.field), "{violation:?}");
        assert!(
            violation.description.contains(violation.field),
            "{violation:?} does not name its field"
        );
    }
    let status = invalid_argument(violations);
    assert_eq!(status.code(), Code::InvalidArgument);
    let received = reaches_the_client(&status);
    let bad_request = received
        .get_details_bad_request()
        .expect("a BadRequest detail");
    let received: Vec<(&str, &str)> = bad_request
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    let sent: Vec<(&str, &str)> = violations
        .iter()
        .map(|v| (v.field, v.description.as_str()))
        .collect();
    assert_eq!(received, sent, "grpc-status-details-bin");
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Every file in `fuzz/corpus/<target>`: the seeds, and whatever the
    /// fuzzer found and was kept.
    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|file| {
                let path = file.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        files
    }

    #[test]
    fn the_order_request_corpus_passes() {
        for (path, bytes) in corpus("order_request") {
            println!("{}", path.display());
            order_request(&bytes);
        }
    }

    #[test]
    fn the_brew_request_corpus_passes() {
        for (path, bytes) in corpus("brew_request") {
            println!("{}", path.display());
            brew_request(&bytes);
        }
    }

    /// The cases the seeds were made from, as messages: each must be
    /// accepted or refused as said, so the seeds stay meaningful.
    #[test]
    fn the_seeds_cover_acceptance_and_every_field() {
        let accepted = pb::OrderRequest {
            customer: "Zoë 李 ☕".into(),
            drink: "latte".into(),
            size: pb::Size::Large as i32,
            request_id: "r-1".into(),
        };
        assert!(NewOrder::try_from(&accepted).is_ok());
        let refused = pb::OrderRequest {
            customer: "\u{7}".into(),
            drink: "ristretto".into(),
            size: 9,
            request_id: "r".repeat(MAX_REQUEST_ID_CHARS + 1),
        };
        let fields: Vec<&str> = NewOrder::try_from(&refused)
            .unwrap_err()
            .iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["customer", "drink", "size", "request_id"]);
        order_request(&accepted.encode_to_vec());
        order_request(&refused.encode_to_vec());
    }
}
