//! What `cafe bench` counts: every call's result, by gRPC status code, and
//! the latencies of the calls that succeeded, in an HDR histogram.
//!
//! A gRPC call's HTTP status is 200 whatever happened; the result is the
//! `grpc-status` in its trailers, which tonic hands over as a
//! [`tonic::Status`]. So a call is sorted by that code, and a call that
//! ended OK but without a drink (a buzzer stream that closed on CANCELLED,
//! say) is counted apart, as `OK_BUT_CANCELLED`: it is not a success.
//!
//! Workers record into a few shards (each a [`Tally`] behind its own
//! mutex) rather than one tally each: a histogram precise from a
//! microsecond to an hour is big, and one per worker would be the
//! generator's biggest cost. A shard's lock is held only to add one number, never
//! across an `.await`.

use std::collections::BTreeMap;

use cafe_domain::proto::v1::OrderStatus;
use grpc_telemetry::outcome::CODE_NAMES;
use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::Code;

/// How one call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call ended with this gRPC status; OK means the drink is READY
    /// (or, for GetMenu, the menu came back).
    Status(Code),
    /// The call ended OK, but the order's last status was not READY.
    NotReady(OrderStatus),
}

impl Outcome {
    /// The outcome of a call that ended OK with the order last seen in
    /// `status`.
    pub fn of_order(status: i32) -> Self {
        match OrderStatus::try_from(status).unwrap_or(OrderStatus::Unspecified) {
            OrderStatus::Ready => Outcome::Status(Code::Ok),
            other => Outcome::NotReady(other),
        }
    }

    /// Whether the customer got what they came for.
    pub fn is_ok(self) -> bool {
        self == Outcome::Status(Code::Ok)
    }

    /// Its place in [`Tally::results`].
    fn slot(self) -> usize {
        match self {
            Outcome::Status(code) => code as usize,
            Outcome::NotReady(status) => CODE_NAMES.len() + status as usize,
        }
    }
}

/// An OK call whose order ended in another status than READY, by the
/// `OrderStatus` numbers.
const NOT_READY_NAMES: [&str; 6] = [
    "OK_BUT_UNSPECIFIED",
    "OK_BUT_QUEUED",
    "OK_BUT_BREWING",
    "OK_BUT_READY",
    "OK_BUT_CANCELLED",
    "OK_BUT_FAILED",
];

const SLOTS: usize = CODE_NAMES.len() + NOT_READY_NAMES.len();

fn slot_name(slot: usize) -> &'static str {
    CODE_NAMES
        .get(slot)
        .or_else(|| NOT_READY_NAMES.get(slot - CODE_NAMES.len()))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The longest latency the histogram tells apart: an hour, in µs. Longer
/// ones are recorded as an hour.
const LONGEST_MICROS: u64 = 3_600_000_000;

/// The counts of one shard, or of the whole run once merged.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latencies of the measured calls that succeeded, in µs.
    latency: Histogram<u64>,
    /// Measured calls by outcome.
    results: [u64; SLOTS],
    /// Measured `UNAVAILABLE` calls that carried a retry hint.
    pub hinted: u64,
    /// Calls that ended during the warm-up (not measured).
    pub warmup: u64,
    /// Calls still in flight when the window ended or the run stopped (not
    /// measured).
    pub abandoned: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            // Three significant digits: a p99 of 10.0372 s reads as 10.04 s.
            latency: Histogram::new_with_bounds(1, LONGEST_MICROS, 3)
                .expect("constant bounds are valid"),
            results: [0; SLOTS],
            hinted: 0,
            warmup: 0,
            abandoned: 0,
        }
    }
}

impl Tally {
    /// Counts one measured call.
    pub fn record(&mut self, outcome: Outcome, latency: std::time::Duration) {
        self.results[outcome.slot()] += 1;
        if outcome.is_ok() {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.latency.saturating_record(micros.max(1));
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Tally) {
        self.latency
            .add(&other.latency)
            .expect("histograms of the same bounds add up");
        for (mine, theirs) in self.results.iter_mut().zip(other.results) {
            *mine += theirs;
        }
        self.hinted += other.hinted;
        self.warmup += other.warmup;
        self.abandoned += other.abandoned;
    }

    /// Measured calls, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.results.iter().sum()
    }

    /// Measured calls that succeeded.
    pub fn ok(&self) -> u64 {
        self.results[Outcome::Status(Code::Ok).slot()]
    }

    /// Measured calls by outcome name (`OK`, `RESOURCE_EXHAUSTED`, …),
    /// only those that happened, in code order.
    pub fn results(&self) -> BTreeMap<&'static str, u64> {
        self.results
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(slot, &count)| (slot_name(slot), count))
            .collect()
    }

    /// The latency percentiles of the calls that succeeded, if any did.
    pub fn latency(&self) -> Option<Latency> {
        if self.latency.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1e3;
        let at = |quantile: f64| ms(self.latency.value_at_quantile(quantile));
        Some(Latency {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(self.latency.max()),
            mean_ms: self.latency.mean().round() / 1e3,
        })
    }
}

/// Latency percentiles, in milliseconds (to the histogram's 3 significant
/// digits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Half the calls took at most this long.
    pub p50_ms: f64,
    /// 90 % did.
    pub p90_ms: f64,
    /// 99 % did.
    pub p99_ms: f64,
    /// 99.9 % did.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The mean.
    pub mean_ms: f64,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn outcomes_are_counted_by_code_and_latency_only_for_successes() {
        let mut tally = Tally::default();
        for ms in 1..=100 {
            tally.record(Outcome::Status(Code::Ok), Duration::from_millis(ms));
        }
        tally.record(
            Outcome::Status(Code::ResourceExhausted),
            Duration::from_secs(3600),
        );
        tally.record(
            Outcome::of_order(OrderStatus::Cancelled as i32),
            Duration::ZERO,
        );
        assert_eq!(tally.requests(), 102);
        assert_eq!(tally.ok(), 100);
        assert_eq!(
            tally.results(),
            BTreeMap::from([
                ("OK", 100),
                ("RESOURCE_EXHAUSTED", 1),
                ("OK_BUT_CANCELLED", 1)
            ])
        );
        let latency = tally.latency().unwrap();
        // The refused call's hour is not in the percentiles (the histogram
        // keeps 3 significant digits: 100 ms reads as 100.0xx).
        assert!((99.9..=100.1).contains(&latency.max_ms), "{latency:?}");
        assert!((49.9..=50.1).contains(&latency.p50_ms), "{latency:?}");
        assert!((98.9..=99.1).contains(&latency.p99_ms), "{latency:?}");
    }

    #[test]
    fn shards_merge_into_one_tally() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        a.record(Outcome::Status(Code::Ok), Duration::from_millis(5));
        b.record(Outcome::Status(Code::Unavailable), Duration::ZERO);
        b.warmup = 3;
        b.abandoned = 2;
        a.merge(&b);
        assert_eq!((a.requests(), a.ok(), a.warmup, a.abandoned), (2, 1, 3, 2));
        assert_eq!(a.results(), BTreeMap::from([("OK", 1), ("UNAVAILABLE", 1)]));
        assert!(Tally::default().latency().is_none());
    }
}
