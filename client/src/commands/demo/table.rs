//! The seed's "Key differences" table (waiting, efficiency, scalability),
//! filled with the numbers the demo has just measured, plus the one the
//! barista's half adds: how long the menu took during the rush.
//!
//! A pure function of the measurements, so its layout is tested here.

use std::time::Duration;

use serde::Serialize;

use crate::output::{human, millis};

/// What one side of a comparison measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    /// From the first order sent to the last drink received.
    pub wall: Duration,
    /// The most drinks brewing at the same moment (the café's timestamps).
    pub at_once: usize,
    /// Drinks served per second of wall-clock time.
    pub per_second: f64,
    /// The slowest `GetMenu` during the rush, if the menu was asked.
    pub menu: Option<Duration>,
}

/// The synchronous and the asynchronous side of one half of the lesson.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// Sequential customers (customer's half), or the blocking café
    /// (barista's half).
    pub sync: Side,
    /// Concurrent customers, or the async café.
    pub async_: Side,
}

/// Everything the table is made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// How many customers each run had.
    pub customers: usize,
    /// Baristas of every demo café.
    pub baristas: u16,
    /// Worker threads of every demo café's runtime.
    pub workers: u16,
    /// The customer's half, if it ran.
    pub customer: Option<Pair>,
    /// The barista's half, if it ran.
    pub barista: Option<Pair>,
}

const ASPECT: usize = 12;
const CELL: usize = 32;

/// The table as lines of at most 80 columns, with a caption saying where
/// each row was measured. Empty if nothing was.
pub fn lines(measured: &Measured) -> Vec<String> {
    // Waiting is the customer's half's lesson; the rest the barista's. With
    // one half only, every row comes from that half.
    let Some(waiting) = measured.customer.or(measured.barista) else {
        return Vec::new();
    };
    let working = measured.barista.or(measured.customer).expect("one ran");
    let row = |aspect: &str, sync: String, async_: String| {
        format!("{aspect:<ASPECT$}  {sync:<CELL$}  {async_}")
            .trim_end()
            .to_owned()
    };
    let baristas = measured.baristas;
    let mut lines = vec![
        "Key differences, as measured just now".to_owned(),
        row(
            "",
            "Synchronous (Flask-like)".into(),
            "Asynchronous (FastAPI-like)".into(),
        ),
    ];
    let (sync_wait, async_wait) = if measured.customer.is_some() {
        ("one after another", "all at once")
    } else {
        ("ordered at once", "ordered at once")
    };
    lines.push(row(
        "Waiting",
        format!("{}, {sync_wait}", human(waiting.sync.wall)),
        format!("{}, {async_wait}", human(waiting.async_.wall)),
    ));
    lines.push(row(
        "Efficiency",
        format!(
            "{} of {baristas} baristas brewing at once",
            working.sync.at_once
        ),
        format!(
            "{} of {baristas} baristas brewing at once",
            working.async_.at_once
        ),
    ));
    lines.push(row(
        "Scalability",
        format!("{:.2} orders/s", working.sync.per_second),
        format!("{:.2} orders/s", working.async_.per_second),
    ));
    if let Some(barista) = measured.barista
        && let (Some(sync), Some(async_)) = (barista.sync.menu, barista.async_.menu)
    {
        lines.push(row(
            "Menu",
            format!("GetMenu took {} in the rush", human(sync)),
            format!("GetMenu took {} in the rush", human(async_)),
        ));
    }
    let n = measured.customers;
    let workers = measured.workers;
    lines.push(String::new());
    lines.extend(match (measured.customer, measured.barista) {
        (Some(_), Some(_)) => vec![
            format!("Waiting: the customer's half ({n} customers, one café, two ways to wait)."),
            format!("The rest: the barista's half (the same {n} customers, all at once, at a"),
            format!("blocking café and an async one, {baristas} baristas and {workers} worker threads each)."),
        ],
        (Some(_), None) => vec![format!(
            "All from the customer's half: {n} customers, one café, two ways to wait."
        )],
        _ => vec![
            format!("All from the barista's half: {n} customers at once, at a blocking café"),
            format!("and an async one, {baristas} baristas and {workers} worker threads each."),
        ],
    });
    lines
}

/// The table for `--json`, a `key_differences` event: each row's two
/// numbers.
#[derive(Debug, Serialize)]
pub struct KeyDifferences {
    waiting_ms: Both<f64>,
    drinks_at_once: Both<usize>,
    orders_per_second: Both<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    menu_ms: Option<Both<f64>>,
}

/// One row's synchronous and asynchronous numbers.
#[derive(Debug, Serialize)]
struct Both<T> {
    synchronous: T,
    asynchronous: T,
}

impl KeyDifferences {
    /// The same rows as [`lines`], as numbers; `None` if nothing ran.
    pub fn from_measured(measured: &Measured) -> Option<Self> {
        let waiting = measured.customer.or(measured.barista)?;
        let working = measured.barista.or(measured.customer)?;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        Some(KeyDifferences {
            waiting_ms: Both {
                synchronous: millis(waiting.sync.wall),
                asynchronous: millis(waiting.async_.wall),
            },
            drinks_at_once: Both {
                synchronous: working.sync.at_once,
                asynchronous: working.async_.at_once,
            },
            orders_per_second: Both {
                synchronous: round(working.sync.per_second),
                asynchronous: round(working.async_.per_second),
            },
            menu_ms: measured.barista.and_then(|b| {
                Some(Both {
                    synchronous: millis(b.sync.menu?),
                    asynchronous: millis(b.async_.menu?),
                })
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(wall_ms: u64, at_once: usize, menu_ms: Option<u64>) -> Side {
        Side {
            wall: Duration::from_millis(wall_ms),
            at_once,
            per_second: 6.0 / (wall_ms as f64 / 1000.0),
            menu: menu_ms.map(Duration::from_millis),
        }
    }

    fn measured(customer: bool, barista: bool) -> Measured {
        Measured {
            customers: 6,
            baristas: 3,
            workers: 2,
            customer: customer.then(|| Pair {
                sync: side(7210, 1, None),
                async_: side(2400, 3, None),
            }),
            barista: barista.then(|| Pair {
                sync: side(3600, 2, Some(3510)),
                async_: side(2400, 3, Some(1)),
            }),
        }
    }

    #[test]
    fn both_halves_fill_every_row_within_80_columns() {
        let text = lines(&measured(true, true)).join("\n");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{line}\n{text}");
        }
        // Waiting from the customer's half; the rest from the barista's.
        assert!(
            text.contains("Waiting       7.21s, one after another"),
            "{text}"
        );
        assert!(text.contains("2 of 3 baristas brewing at once"), "{text}");
        assert!(text.contains("GetMenu took 3.51s in the rush"), "{text}");
        assert!(text.contains("1.67 orders/s"), "{text}");
    }

    #[test]
    fn one_half_fills_the_table_from_itself() {
        let customer = lines(&measured(true, false)).join("\n");
        assert!(customer.contains("1 of 3 baristas"), "{customer}");
        assert!(!customer.contains("GetMenu"), "{customer}");
        let barista = lines(&measured(false, true)).join("\n");
        assert!(barista.contains("3.6s, ordered at once"), "{barista}");
        assert!(lines(&measured(false, false)).is_empty());
    }
}
