//! The order store: where the café's orders are kept beyond its memory.
//!
//! - [`shared`]: several cafés sharing one line in PostgreSQL.
//!
//! (The single café's store, its journal and restart recovery are built
//! beside this on the `store` branch; this module grows with them.)

pub mod shared;
