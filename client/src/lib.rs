//! The `cafe` CLI's library (being built; see the README).
