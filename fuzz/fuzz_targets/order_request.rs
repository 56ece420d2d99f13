//! Any bytes as the café's `OrderRequest`: decoded with prost, checked as
//! `OrderCoffee` and `OrderWithBuzzer` check it, a refusal carried through
//! the trailers (see `cafe_domain::fuzz::order_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| cafe_domain::fuzz::order_request(bytes));
