//! Any bytes as a barista's `BrewRequest`: decoded with prost, checked as
//! `Brew` checks it, a refusal carried through the trailers (see
//! `cafe_domain::fuzz::brew_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| cafe_domain::fuzz::brew_request(bytes));
