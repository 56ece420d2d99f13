//! The barista backend's integration tests, one binary: each module is one
//! idea, and every test starts its own barista on port 0 (`cafe_testkit`),
//! on a runtime of its own so it can be killed like a crashed process.
//!
//! One binary rather than one per file: the tests link once, and run in
//! parallel with each other. Nothing here sets process-wide state, so they
//! can share a process.

mod brew;
mod closing;
mod faults;
mod metrics;
