//! The benchmark's yardsticks, so the café's figures can be read as ratios
//! to something fixed rather than as noisy absolutes.
//!
//! # Layout
//! - [`floor`]: a bare tonic server for the café's `cafe.v1.Cafe` contract
//!   that takes an order, sleeps the brew time and answers READY. No order
//!   book, no line, no logs, no traces: whatever the café spends per order
//!   beyond this, it spends on its own machinery. This is the framework's
//!   floor (tonic, hyper, h2, tokio, prost).
//! - [`collector`]: an OTLP trace sink that answers every export at once and
//!   only counts the spans, so "tracing on" measures the café's exporting,
//!   not a slow collector.
//!
//! Both binaries (`cafe-bench-floor`, `cafe-bench-collector`) are thin:
//! flags, bind, serve until SIGINT or SIGTERM.

pub mod collector;
pub mod floor;
