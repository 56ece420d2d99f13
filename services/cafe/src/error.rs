//! Everything that can go wrong in the café, and the one place where it
//! becomes a gRPC status.
//!
//! Variants are split by who caused them: the customer (a bad field, an
//! unknown order, a wrong claim token) or the café (closing, a full queue,
//! an order that could not be finished). The message of each is written
//! for the person at the other end; internal details are logged, never
//! sent. Every status the café answers with is made by the one `From`
//! below, including those of an order that ended without its drink.

use std::time::Duration;

use cafe_domain::{
    order::{FieldViolation, OrderId, OrderStatus, quoted},
    status::{describe, invalid_argument},
};
use grpc_serving::retry_hint;
use tonic::Status;

/// How long a customer turned away by a failing store is asked to wait
/// before trying again: the store's writer keeps trying meanwhile.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why the café could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CafeError {
    // What the customer caused.
    /// One or more fields of the request are wrong.
    #[error("{}", describe(.0))]
    InvalidRequest(Vec<FieldViolation>),

    /// No order has this id (or it was forgotten long ago).
    #[error("no order {}: check the id from your ticket", quoted(.0))]
    OrderNotFound(String),

    /// The claim token does not match the order's.
    #[error(
        "the claim_token does not match order {0}: only the customer who placed it may cancel it"
    )]
    WrongClaimToken(OrderId),

    /// The order is past the point where it can be cancelled.
    #[error("order {id} is already {status} and can no longer be cancelled")]
    NotCancellable {
        /// The order.
        id: OrderId,
        /// Its final status.
        status: OrderStatus,
    },

    // What the café's situation caused.
    /// Too many orders are waiting already.
    #[error("the queue is full ({capacity} orders waiting): try again in a moment")]
    QueueFull {
        /// The `--queue-capacity`.
        capacity: usize,
    },

    /// The café is shutting down and takes no new orders.
    #[error("the café is closing and takes no new orders: retry on another replica, or here later")]
    Closing,

    /// The customer waited at the counter as long as the café allows
    /// (`--max-counter-wait`); the order was cancelled.
    #[error(
        "waited {} at the counter, the longest this café allows: the order is cancelled \
         (order with a buzzer to wait longer)",
        humantime::format_duration(*.0)
    )]
    CounterWaitOver(std::time::Duration),

    /// No barista can be reached, so no order could be brewed.
    #[error("no barista is available ({0}): try again in a moment")]
    NoBarista(String),

    /// The order store cannot be written, so no order could be kept.
    #[error("the order store is not writable ({0}): try again in a moment")]
    StoreUnwritable(String),

    /// The café is restarting and left the order, still open, in its store:
    /// it keeps its place and is brewed once the café is back.
    #[error(
        "the café is restarting: order {0} keeps its place in line and is brewed once the café \
         is back; follow it then with WatchOrder (order_id {0}), or retry OrderCoffee with the \
         same request_id"
    )]
    KeptForRestart(OrderId),

    // How an order waited for at the counter ended, when not READY.
    /// The order was cancelled (the customer cancelled it with its claim
    /// token from elsewhere).
    #[error("order {id} was cancelled: {note}")]
    Cancelled {
        /// The order.
        id: OrderId,
        /// Why, as the order's note says.
        note: String,
    },

    /// The order was cancelled because the café closed before a barista got
    /// to it: try again once it is back.
    #[error("order {id} was cancelled: {note}")]
    CancelledByClosing {
        /// The order.
        id: OrderId,
        /// Why, as the order's note says.
        note: String,
    },

    /// The order could not be made (no barista could finish it). FAILED is
    /// final: a retry with the same request_id finds the same order, so the
    /// answer says to order again rather than to try again.
    #[error(
        "order {id} could not be made ({note}): it is FAILED for good; order again with a new \
         request_id"
    )]
    Failed {
        /// The order.
        id: OrderId,
        /// Why, as the order's note says.
        note: String,
    },
}

impl From<CafeError> for Status {
    fn from(error: CafeError) -> Self {
        let message = error.to_string();
        match error {
            // With a BadRequest detail naming each wrong field.
            CafeError::InvalidRequest(violations) => invalid_argument(&violations),
            CafeError::OrderNotFound(_) => Status::not_found(message),
            CafeError::WrongClaimToken(_) => Status::permission_denied(message),
            // The order is final, and so is this answer: the same request_id
            // gets it again, so it is not UNAVAILABLE ("try again").
            CafeError::NotCancellable { .. } | CafeError::Failed { .. } => {
                Status::failed_precondition(message)
            }
            CafeError::QueueFull { .. } => Status::resource_exhausted(message),
            CafeError::CounterWaitOver(_) => Status::deadline_exceeded(message),
            CafeError::Cancelled { .. } => Status::cancelled(message),
            CafeError::StoreUnwritable(_) => retry_hint::unavailable(message, STORE_RETRY_AFTER),
            CafeError::Closing
            | CafeError::NoBarista(_)
            | CafeError::KeptForRestart(_)
            | CafeError::CancelledByClosing { .. } => Status::unavailable(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_order_is_a_final_answer_not_a_retry() {
        let status = Status::from(CafeError::Failed {
            id: OrderId::from("ord-1"),
            note: "no barista could finish it".into(),
        });
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.message().contains("ord-1"), "{status:?}");
        assert!(status.message().contains("new request_id"), "{status:?}");
    }
}
