//! The café server: takes orders over gRPC and has baristas brew them.
//!
//! # Layout
//! - [`config`]: its own flags beside the ones every server has
//!   ([`grpc_serving::ServerFlags`]), each with its environment variable.
//! - [`startup`]: its part of serving (`cafe.v1.Cafe`, its health, its closing
//!   steps); binding, the transport and the bounded shutdown are
//!   [`grpc_serving`]'s.
//! - [`service`]: the `cafe.v1.Cafe` gRPC service, a thin layer over the
//!   café's orders: the handlers, waiting at the counter, the buzzer and
//!   board streams, and the spans that show the waiting.
//! - [`book`]: the state machine: every order, the line (ticket numbers, so
//!   a place is derived, not rewritten), and the channels that carry each
//!   order's news to whoever waits for it. No I/O, no store.
//! - [`store`]: where orders are kept, behind one seam ([`store::Orders`]:
//!   memory, a SQLite journal, or a line shared in PostgreSQL).
//! - [`availability`]: whether the café takes orders (open, no barista,
//!   closed), the one writer of its gRPC health.
//! - [`baristas`]: who brews (embedded or remote) and the one loop that takes
//!   orders from the line to them; where the waiting happens.
//! - [`remote`]: the café as a client of `cafe-barista` replicas.
//! - [`metrics`]: the café's gauges for Prometheus, read from the book when
//!   scraped; the calls' metrics are the serving scaffold's.
//! - [`error`]: what can go wrong, and its one mapping to a gRPC status.
//! - `injected_panic`: a panic a test injects into one of the café's critical tasks
//!   (`CAFE_INJECT_PANIC`), to see the café close and come back.
//! - [`fuzz`]: what the fuzz targets for GetOrder, WatchOrder and
//!   CancelOrder run (`fuzz/`), over the café's real book.
//!
//! Follow an order: [`service::CafeService`] checks it and places it through
//! [`store::Orders`] in the [`book::OrderBook`]; a barista in [`baristas`]
//! claims it and brews it (or hands it to a remote barista); every change
//! wakes whoever follows that order ([`book::Follower`]).

pub mod availability;
pub mod baristas;
pub mod book;
pub mod config;
pub mod error;
pub mod fuzz;
mod injected_panic;
pub mod metrics;
pub mod remote;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
