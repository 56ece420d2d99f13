//! The barista backend: people who turn an order into a drink.
//!
//! # Layout
//! - [`brewing`]: how a barista spends the brew time, and the blocking
//!   anti-pattern next to the right way.
//!
//! Today the café runs its baristas in-process (see `services/cafe`); the
//! same brewing code will also run behind the `Barista` gRPC service.

pub mod brewing;
