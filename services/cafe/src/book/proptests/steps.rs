//! The steps a story of the property test is made of, and how `proptest`
//! picks them (placing and brewing more often than closing).

use proptest::{prelude::*, sample::Index};

/// One thing that happens in the café.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// A customer orders (`customer` of a few, so request ids collide);
    /// `espresso` instead of a latte, to reuse a request id for another
    /// drink.
    Place {
        customer: u8,
        request_id: Option<u8>,
        espresso: bool,
    },
    /// A barista takes the next order from the line (it is QUEUED and in
    /// their hands until they start).
    Take,
    /// A barista starts brewing an order in their hands (again, after a
    /// remote barista left it).
    Start(Index),
    /// The brew finished.
    Finish(Index),
    /// The brew could not be finished.
    Fail(Index),
    /// The remote barista brewing it went away (the order keeps its status).
    BaristaLeft(Index),
    /// The customer cancels with their claim token (or a wrong one).
    Cancel { order: Index, right_token: bool },
    /// A counter customer's deadline passed, or they hung up: the order is
    /// abandoned.
    Deadline(Index),
    /// Every barista is out of reach, so no new order is taken.
    NoBarista,
    /// A barista is reachable again.
    BaristaBack,
    /// SIGTERM: the café closes (the memory store cancels its line).
    Close,
    /// The shutdown's grace ran out: whatever has not ended fails.
    GraceOver,
}

pub(crate) fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4u8, proptest::option::of(0..3u8), any::<bool>()).prop_map(
            |(customer, request_id, espresso)| Step::Place { customer, request_id, espresso }
        ),
        3 => Just(Step::Take),
        3 => any::<Index>().prop_map(Step::Start),
        3 => any::<Index>().prop_map(Step::Finish),
        1 => any::<Index>().prop_map(Step::Fail),
        1 => any::<Index>().prop_map(Step::BaristaLeft),
        2 => (any::<Index>(), any::<bool>())
            .prop_map(|(order, right_token)| Step::Cancel { order, right_token }),
        1 => any::<Index>().prop_map(Step::Deadline),
        1 => Just(Step::NoBarista),
        1 => Just(Step::BaristaBack),
        1 => Just(Step::Close),
        1 => Just(Step::GraceOver),
    ]
}
