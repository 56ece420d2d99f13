//! The barista backend: people who turn an order into a drink, as a gRPC
//! service of its own (`cafe.v1.Barista`) that scales apart from the café.
//!
//! # Layout
//! - [`config`]: its own flags beside the ones every server has
//!   ([`grpc_serving::ServerFlags`]), each with its environment variable.
//! - [`startup`]: its part of serving (`cafe.v1.Barista`, its health, its closing
//!   steps); binding, the transport and the bounded shutdown are
//!   [`grpc_serving`]'s.
//! - [`service`]: the `Brew` call: a stream of `started`, then `finished`,
//!   and a barista freed the moment its caller goes away; `GetStation`,
//!   how many baristas there are and how many are busy.
//! - [`station`]: the named baristas, counted by a semaphore, and why a
//!   replica keeps no queue (a full one answers RESOURCE_EXHAUSTED).
//! - [`metrics`]: its gauges for Prometheus (brews in flight, free
//!   baristas), read when scraped; the calls' metrics are the serving
//!   scaffold's.
//! - [`error`]: what can go wrong, and its one mapping to a gRPC status.
//!
//! How a barista spends the brew time (and the blocking anti-pattern next to
//! the right way) is [`cafe_domain::brewing`]: the café's embedded baristas run
//! the same code in-process, and call this service when given
//! `--barista-endpoint`.

pub mod config;
pub mod error;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod station;

pub use config::Config;
pub use startup::Application;
