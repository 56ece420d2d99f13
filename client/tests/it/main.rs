//! The `cafe` client's integration tests, one binary: the real `cafe`
//! binary and its library against real cafés on port 0 (`cafe_testkit`),
//! the timeline renderer on fixed inputs, one trace across three services,
//! and the docs held to the code.
//!
//! One binary rather than one per file: the tests link once, and run in
//! parallel with each other. Nothing here sets process-wide state: the
//! trace tests make their telemetry the default for their own thread only
//! (see `traces`), so they can share a process with the rest.

mod bench;
mod cli;
mod docs;
mod library;
mod timeline;
mod traces;
