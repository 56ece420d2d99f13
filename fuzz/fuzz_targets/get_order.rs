//! Any bytes as the café's `GetOrderRequest`: decoded with prost, looked up in a
//! real order book as `GetOrder` does, a refusal carried through the
//! trailers (see `cafe_server::fuzz::get_order`).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| cafe_server::fuzz::get_order(bytes));
