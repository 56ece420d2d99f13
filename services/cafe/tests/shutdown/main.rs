//! Closing under load: what every customer hears when the café is told to
//! close while 2,000 orders are in flight, for two kinds of client.
//!
//! - [`honouring`]: customers that wait as long as a retry hint says, on a
//!   café in this process: every call ends with its order's final state or
//!   `UNAVAILABLE`;
//! - [`naive`]: customers that send again at once whatever they are told,
//!   on the real `cafe-server` binary and its SIGTERM: no call ends
//!   `INTERNAL` or `UNKNOWN`, and every acknowledged order's fate is known
//!   after the restart.
//!
//! A binary of its own, unlike the café's other tests (`tests/it/`): each
//! test times a drain of 2,000 orders against a shutdown grace, and a test
//! beside it in the same process would take the CPU that drain needs. So
//! its tests take [`ALONE`] in turn, and the suite runs one binary at a
//! time.

mod honouring;
mod naive;

/// Held by each test for its whole run: the two never drain at once.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Orders kept in flight when the café is told to close.
const IN_FLIGHT: usize = 2_000;
/// Baristas, so this many orders are brewing and the rest wait in line.
const BARISTAS: u32 = 100;
/// Connections the customers share (as a load generator would).
const CONNECTIONS: usize = 8;
