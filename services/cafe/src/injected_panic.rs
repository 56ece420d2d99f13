//! A fault a test injects into the real binary: one of the café's critical
//! tasks panics, so that a test can watch the café notice, close and come
//! back on the same store (`tests/it/supervision.rs`).
//!
//! `CAFE_INJECT_PANIC=PART:N` makes PART panic at its N-th step: `barista`
//! (an embedded barista, as it takes its N-th order, counted over all of
//! them), `dispatcher` (the remote dispatcher, likewise), `writer` (the
//! journal's writer, as it is about to write its N-th batch) or `following`
//! (a shared line's follower, at its N-th notification). It is the real task
//! that dies, at a real point of its work, and nothing else changes. Unset,
//! which is how the café is always run, it costs one atomic load per step.
//! An environment variable, not a flag: it is not for operators, and
//! `--help` stays about running a café.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

/// The variable that names the part and the step.
const INJECT_PANIC: &str = "CAFE_INJECT_PANIC";

/// The injected fault, read once: the part and the step it dies at.
fn injected() -> Option<&'static (String, u64)> {
    static INJECTED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    INJECTED
        .get_or_init(|| {
            let value = std::env::var(INJECT_PANIC).ok()?;
            let (part, step) = value.split_once(':')?;
            Some((part.to_owned(), step.parse().ok()?))
        })
        .as_ref()
}

/// One step of `part`'s work: panics if it is the step the injected fault
/// names.
pub(crate) fn step(part: &str) {
    static STEPS: AtomicU64 = AtomicU64::new(0);
    let Some((injected, at)) = injected() else {
        return;
    };
    if injected == part && STEPS.fetch_add(1, Ordering::Relaxed) + 1 == *at {
        panic!("{INJECT_PANIC}={part}:{at}: an injected fault");
    }
}
