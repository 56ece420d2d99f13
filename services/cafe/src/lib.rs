//! The café server: takes orders over gRPC and has baristas brew them.
//!
//! # Layout
//! - [`config`]: the flags and environment variables, with their defaults.
//! - [`startup`]: binds, serves, and closes in order on shutdown.
//! - [`service`]: the `cafe.v1.Cafe` gRPC service, a thin layer over the book.
//! - [`book`]: every order, the line for the baristas, and the channels that
//!   carry each order's news to its buzzers and the board.
//! - [`baristas`]: the tasks that take orders from the line and brew them;
//!   where the waiting happens, and why it costs no thread.
//! - [`error`]: what can go wrong, and its one mapping to a gRPC status.
//! - [`shutdown`]: the signals that close the café.
//!
//! Follow an order: [`service::CafeService`] checks it and puts it in the
//! [`book::OrderBook`]; a barista in [`baristas`] takes it from the line and
//! brews it; every change wakes the customer's buzzer through the order's
//! `watch` channel.

pub mod baristas;
pub mod book;
pub mod config;
pub mod error;
pub mod service;
pub mod shutdown;
pub mod startup;

pub use config::Config;
pub use startup::Application;
