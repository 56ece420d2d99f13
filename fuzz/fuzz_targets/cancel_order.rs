//! Any bytes as the café's `CancelOrderRequest`: decoded with prost, looked up in a
//! real order book as `CancelOrder` does, a refusal carried through the
//! trailers (see `cafe_server::fuzz::cancel_order`).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| cafe_server::fuzz::cancel_order(bytes));
