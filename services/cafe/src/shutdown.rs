//! The signals that close the café: the shared [`cafe::shutdown::signal`],
//! re-exported so the café's layout keeps its `shutdown` module.

pub use cafe::shutdown::signal;
