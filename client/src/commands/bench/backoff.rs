//! How a `cafe bench` worker waits after `UNAVAILABLE`: as a well-behaved
//! gRPC client does, not at once.
//!
//! A café that is closing answers the calls it refuses `UNAVAILABLE` with
//! a retry hint, the time until it will have gone (see
//! `grpc_serving::retry_hint`). A worker that sent again at once
//! would still be sending when GOAWAY arrives, and hyper's client would
//! fail its queued calls (`docs/cafe-server.md`, "What happens on
//! shutdown"): errors of the generator's making. So it waits that long.
//!
//! An `UNAVAILABLE` without a hint (the café has gone: "connection
//! refused"; or its line's store cannot be written) is retried after an
//! exponential backoff instead, as gRPC's clients do when they reconnect:
//! 2,000 workers retrying a refused connection in a tight loop would spend
//! the machine's cores on refusals while the café restarts. The backoff
//! starts at [`FIRST`], doubles up to [`LONGEST`], and is spread by a
//! jitter of its own per worker, so that a café coming back is not met by
//! every worker in the same millisecond. Any other answer resets it.
//!
//! The channel reconnects by itself: tonic's `Channel` dials again on the
//! first call after its connection has gone, so waiting is all a worker
//! does.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The trailer (header, in a trailers-only answer) that carries the retry
/// hint in milliseconds.
pub const PUSHBACK: &str = "grpc-retry-pushback-ms";

/// The first wait after an `UNAVAILABLE` without a hint.
pub const FIRST: Duration = Duration::from_millis(100);

/// The longest wait after `UNAVAILABLE`s without a hint in a row.
pub const LONGEST: Duration = Duration::from_secs(2);

/// The retry hint in `status`: the `grpc-retry-pushback-ms` trailer, or a
/// `google.rpc.RetryInfo` detail when the trailer is missing.
pub fn retry_hint(status: &Status) -> Option<Duration> {
    if let Some(millis) = status.metadata().get(PUSHBACK) {
        // gRPC's rule: a hint that is not a number means "do not retry";
        // a benchmark worker keeps going, after the longest backoff.
        let millis = millis.to_str().ok().and_then(|ms| ms.parse().ok());
        return Some(millis.map_or(LONGEST, Duration::from_millis));
    }
    status.get_details_retry_info()?.retry_delay
}

/// One worker's backoff: how long to wait after each answer.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// `UNAVAILABLE`s without a hint in a row.
    streak: u32,
    /// This worker's spread: a factor between 0.8 and 1.2.
    jitter: f64,
}

impl Backoff {
    /// The backoff of worker number `worker`.
    pub fn new(worker: usize) -> Self {
        // A fixed spread per worker, from its number (a multiplicative
        // hash): no random number generator for a factor that only has to
        // differ between neighbours.
        let spread = (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54; // 0..1024
        Backoff {
            streak: 0,
            jitter: 0.8 + 0.4 * spread as f64 / 1024.0,
        }
    }

    /// How long to wait before the next call, after a call that failed
    /// with `status` (`None` for a call that did not fail): the retry hint
    /// when the answer carries one, the backoff after an `UNAVAILABLE`
    /// without one, nothing after anything else.
    pub fn after(&mut self, status: Option<&Status>) -> Option<Duration> {
        let Some(status) = status.filter(|status| status.code() == Code::Unavailable) else {
            self.streak = 0;
            return None;
        };
        if let Some(hint) = retry_hint(status) {
            // The café said when to come back: exactly then (as gRPC's
            // clients do with a pushback), and the streak starts over.
            self.streak = 0;
            return Some(hint);
        }
        let doubled = FIRST.saturating_mul(1 << self.streak.min(16));
        self.streak = self.streak.saturating_add(1);
        Some(doubled.min(LONGEST).mul_f64(self.jitter))
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    fn hinted(millis: &str) -> Status {
        let mut status = Status::unavailable("closing");
        status
            .metadata_mut()
            .insert(PUSHBACK, millis.parse().unwrap());
        status
    }

    #[test]
    fn the_hint_is_read_from_the_trailer_or_from_retry_info() {
        assert_eq!(
            retry_hint(&hinted("3000")),
            Some(Duration::from_millis(3_000))
        );
        let details = ErrorDetails::with_retry_info(Some(Duration::from_millis(1_500)));
        let status = Status::with_error_details(Code::Unavailable, "closing", details);
        assert_eq!(retry_hint(&status), Some(Duration::from_millis(1_500)));
        assert_eq!(retry_hint(&Status::unavailable("gone")), None);
        // Not a number: still a wait, not a retry at once.
        assert_eq!(retry_hint(&hinted("soon")), Some(LONGEST));
    }

    #[test]
    fn a_hint_is_waited_exactly_and_other_unavailables_back_off_exponentially() {
        let mut backoff = Backoff::new(7);
        assert_eq!(backoff.after(None), None);
        assert_eq!(
            backoff.after(Some(&Status::resource_exhausted("line full"))),
            None
        );
        assert_eq!(
            backoff.after(Some(&hinted("2000"))),
            Some(Duration::from_secs(2))
        );

        let gone = Status::unavailable("tcp connect error");
        let waits: Vec<Duration> = (0..8)
            .map(|_| backoff.after(Some(&gone)).unwrap())
            .collect();
        for pair in waits.windows(2) {
            assert!(pair[0] <= pair[1], "{waits:?}");
        }
        let (low, high) = (FIRST.mul_f64(0.8), LONGEST.mul_f64(1.2));
        assert!(
            waits.iter().all(|wait| (low..=high).contains(wait)),
            "{waits:?}"
        );
        assert!(waits[0] <= FIRST.mul_f64(1.2), "{waits:?}");
        assert!(waits[7] >= LONGEST.mul_f64(0.8), "{waits:?}");

        // An answer resets the streak: the next refusal waits the least again.
        assert_eq!(backoff.after(None), None);
        assert_eq!(backoff.after(Some(&gone)), Some(waits[0]));
    }

    #[test]
    fn neighbouring_workers_wait_different_times() {
        let gone = Status::unavailable("tcp connect error");
        let waits: std::collections::BTreeSet<Duration> = (0..16)
            .map(|worker| Backoff::new(worker).after(Some(&gone)).unwrap())
            .collect();
        assert!(waits.len() > 12, "{waits:?}");
    }
}
