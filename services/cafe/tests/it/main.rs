//! The café's integration tests, one binary: each module is one idea, and
//! every test starts its own café on port 0 (`cafe_testkit`), in this
//! process or, where what is tested is the binary itself (signals, crashes,
//! a full disk), as a real `cafe-server` process.
//!
//! One binary rather than one per file: the tests link once, and run in
//! parallel with each other. Nothing here sets process-wide state (a global
//! subscriber, an environment variable), so they can share a process. The
//! tests that must run alone, closing under 2,000 orders in flight, are
//! the package's second binary (`tests/shutdown/`, which says why).

mod board;
mod cancelling;
mod closing;
mod exit_flush;
mod faults;
mod interop;
mod leaks;
mod limits;
mod log_traces;
mod metrics;
mod orders;
mod queueing;
mod restart;
mod shared_line;
mod store_faults;
mod store_files;
mod storm;
mod supervision;
mod tls_reload;
