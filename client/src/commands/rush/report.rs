//! A rush's results: each customer's visit, by the customer's clock and the
//! café's, and the totals that compare the two ways of waiting.

use std::time::{Duration, SystemTime};

use super::Pace;
use crate::{error::ClientError, output::human, timeline::Row};

/// One customer's visit, timed by the customer's own clock from the start
/// of the run, and by the café's clock inside.
#[derive(Debug)]
pub struct Visit {
    /// 1-based customer number, in the order they queued up to send.
    pub customer: usize,
    /// When the order was sent.
    pub sent: Duration,
    /// When the answer came back.
    pub received: Duration,
    /// The served order, or why not.
    pub outcome: Result<Served, ClientError>,
    /// The trace id the café answered with (`x-trace-id`), if any.
    pub trace_id: Option<String>,
}

/// What a served customer got.
#[derive(Debug, Clone)]
pub struct Served {
    /// The order's id.
    pub order_id: String,
    /// Who brewed it.
    pub barista: String,
    /// In line, by the café's clock.
    pub waiting: Duration,
    /// Brewing, by the café's clock.
    pub brewing: Duration,
    /// When a barista started on it and when it was ready, by the café's
    /// clock: which drinks were brewing at the same time.
    pub brewed: Option<(SystemTime, SystemTime)>,
    /// When the café placed it, by the café's clock.
    pub placed: Option<SystemTime>,
}

impl Visit {
    /// How long the customer waited, by their own clock.
    pub fn latency(&self) -> Duration {
        self.received.saturating_sub(self.sent)
    }
}

/// One run of a rush.
#[derive(Debug)]
pub struct Report {
    /// How the customers waited.
    pub pace: Pace,
    /// How many customers were planned.
    pub planned: usize,
    /// The customer's wall-clock time when the run started, to read the
    /// café's timestamps against.
    pub started_at: SystemTime,
    /// Wall-clock time from the first order sent to the last answer (or the
    /// interruption).
    pub wall: Duration,
    /// The visits that ended, in the order they ended.
    pub visits: Vec<Visit>,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
}

impl Report {
    /// The visits that got their drink.
    pub fn served(&self) -> impl Iterator<Item = (&Visit, &Served)> {
        self.visits
            .iter()
            .filter_map(|v| v.outcome.as_ref().ok().map(|s| (v, s)))
    }

    /// The sum of every served customer's wait.
    pub fn latency_sum(&self) -> Duration {
        self.served().map(|(v, _)| v.latency()).sum()
    }

    /// The longest wait of a served customer.
    pub fn longest(&self) -> Duration {
        self.served()
            .map(|(v, _)| v.latency())
            .max()
            .unwrap_or_default()
    }

    /// The most drinks that were brewing at the same moment, by the café's
    /// own timestamps: how many baristas were really at work.
    pub fn drinks_at_once(&self) -> usize {
        // Sweep over the starts and ends in time order; an end sorts before
        // a start at the same instant (one barista handing over to the
        // next is not two drinks at once).
        let mut edges: Vec<(SystemTime, i32)> = self
            .served()
            .filter_map(|(_, served)| served.brewed)
            .flat_map(|(started, ready)| [(started, 1), (ready, -1)])
            .collect();
        edges.sort();
        let mut brewing = 0i32;
        let mut most = 0i32;
        for (_, change) in edges {
            brewing += change;
            most = most.max(brewing);
        }
        usize::try_from(most).unwrap_or(0)
    }

    /// Served orders per second of the run's wall-clock time.
    pub fn orders_per_second(&self) -> f64 {
        self.served().count() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The trace the run belongs to, as the café reported it.
    pub fn trace_id(&self) -> Option<&str> {
        self.visits.iter().find_map(|v| v.trace_id.as_deref())
    }

    /// The timeline rows, in the order the drinks were ready (so the fan
    /// of a concurrent run reads top to bottom, and so does the staircase
    /// of a café that answers late), labelled by customer.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .visits
            .iter()
            .map(|visit| {
                let served = visit.outcome.as_ref().ok();
                Row {
                    label: format!("#{}", visit.customer),
                    sent: visit.sent,
                    received: visit.received,
                    waiting: served.map(|s| s.waiting).unwrap_or_default(),
                    brewing: served.map(|s| s.brewing).unwrap_or_default(),
                    // The café's placement on this run's axis; before the
                    // run started means the clocks disagree: unknown.
                    placed: served
                        .and_then(|s| s.placed)
                        .and_then(|placed| placed.duration_since(self.started_at).ok()),
                }
            })
            .collect();
        rows.sort_by_key(|row| (row.ready(), row.received));
        rows
    }
}

/// The table of totals, and the speed-up when both paces ran, as lines.
pub fn totals(reports: &[&Report]) -> Vec<String> {
    let served = |report: &Report| format!("{}/{}", report.served().count(), report.planned);
    // Wide enough for `1000/1000`.
    let width = reports
        .iter()
        .map(|r| served(r).len())
        .chain([7])
        .max()
        .unwrap_or(7);
    let mut lines = vec![format!(
        "{:<11} {:>width$} {:>11} {:>13} {:>13}",
        "", "served", "wall-clock", "sum of waits", "longest wait"
    )];
    for report in reports {
        lines.push(format!(
            "{:<11} {:>width$} {:>11} {:>13} {:>13}",
            report.pace.name(),
            served(report),
            human(report.wall),
            human(report.latency_sum()),
            human(report.longest()),
        ));
    }
    if let [sequential, concurrent] = reports {
        lines.push(format!(
            "speed-up: {:.1}× — the same orders on the same café; only the waiting changed",
            speedup(sequential, concurrent)
        ));
    }
    lines
}

/// How many times shorter the second run was than the first.
pub fn speedup(first: &Report, second: &Report) -> f64 {
    first.wall.as_secs_f64() / second.wall.as_secs_f64().max(1e-9)
}
