//! The café server: takes orders over gRPC and has baristas brew them.
//!
//! # Layout
//! - [`config`]: its own flags beside the ones every server has
//!   ([`grpc_serving::ServerFlags`]), each with its environment variable.
//! - [`startup`]: its part of serving (`cafe.v1.Cafe`, its health, its closing
//!   steps); binding, the transport and the bounded shutdown are
//!   [`grpc_serving`]'s.
//! - [`service`]: the `cafe.v1.Cafe` gRPC service, a thin layer over the
//!   book: the handlers, waiting at the counter, the buzzer and board
//!   streams, and the spans that show the waiting.
//! - [`book`]: every order, the line for the baristas (ticket numbers, so a
//!   place in line is derived, not rewritten), and the channels that carry
//!   each order's news to whoever waits for it.
//! - [`availability`]: whether the café takes orders (open, no barista,
//!   closed), the one writer of its gRPC health.
//! - [`baristas`]: who brews ([`baristas::Brewers`]: embedded or remote) and
//!   the tasks that take orders from the line to them; where the waiting
//!   happens, and why it costs no thread.
//! - [`remote`]: the café as a client of `cafe-barista` replicas: DNS
//!   re-resolution, health watching, each replica's baristas read from its
//!   station and exactly that many drinks in flight (the café's line the
//!   only line), retries when a barista goes away, and deadline propagation.
//! - [`metrics`]: the café's gauges for Prometheus (its line, orders by
//!   status, open streams, remote baristas up and their slots), read from the book when
//!   scraped; the calls' metrics are the serving scaffold's.
//! - [`store`]: where orders outlive the process: the book's journal,
//!   written by one task with group commit to SQLite or PostgreSQL, and
//!   read back at a restart.
//! - [`error`]: what can go wrong, and its one mapping to a gRPC status.
//! - [`store`]: where orders are kept beyond memory; [`store::shared`] is
//!   several cafés sharing one line in PostgreSQL.
//!
//! The signals that close it (SIGINT, SIGTERM) are the shared
//! [`grpc_serving::shutdown`]'s, as the barista backend's are.
//!
//! Follow an order: [`service::CafeService`] checks it and puts it in the
//! [`book::OrderBook`]; a barista in [`baristas`] takes it from the line and
//! brews it (or hands it to a remote barista); every change wakes whoever
//! follows that order ([`book::Follower`]) through the order's `watch`
//! channel.

pub mod availability;
pub mod baristas;
pub mod book;
pub mod config;
pub mod error;
pub mod metrics;
pub mod remote;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
