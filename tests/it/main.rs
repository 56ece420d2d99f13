//! The end-to-end tests that cross services, one binary: the café with
//! remote baristas, two cafés on one PostgreSQL line, metrics and traces
//! across services, TLS between them, and the deployment files held to the
//! binaries (`deploy`). Every server is real, on port 0 (`cafe_testkit`).
//!
//! One binary rather than one per file: the tests link once, and run in
//! parallel with each other. Nothing here sets process-wide state: the
//! trace tests make their telemetry the default for their own thread only
//! (see `traces`), so they can share a process with the rest.

mod deploy;
mod metrics;
mod remote_baristas;
mod shared_line_remote;
mod tls;
mod traces;
