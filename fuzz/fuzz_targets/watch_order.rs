//! Any bytes as the café's `WatchOrderRequest`: decoded with prost, looked up in a
//! real order book as `WatchOrder` does, a refusal carried through the
//! trailers (see `cafe_server::fuzz::watch_order`).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| cafe_server::fuzz::watch_order(bytes));
