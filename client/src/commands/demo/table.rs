//! The seed's "Key differences" table (waiting, efficiency, scalability),
//! filled with the numbers the demo has just measured, plus the one the
//! barista's half adds: how long the menu took during the rush. Each half
//! has a part of its own, with its own two columns: the customer's waiting
//! is a client's choice at one café, the server's threads a server's at two,
//! and a row that put one under the other's heading would teach the wrong
//! thing.
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

/// The table as lines of at most 80 columns, one part per half that ran,
/// each with its own columns: the customer's waiting (one café, two ways to
/// wait) and the server's threads (two cafés, the same customers), so no row
/// files a client's choice under a server's. Empty if nothing was measured.
pub fn lines(measured: &Measured) -> Vec<String> {
    if measured.customer.is_none() && measured.barista.is_none() {
        return Vec::new();
    }
    let row = |aspect: &str, sync: String, async_: String| {
        format!("{aspect:<ASPECT$}  {sync:<CELL$}  {async_}")
            .trim_end()
            .to_owned()
    };
    let (n, baristas, workers) = (measured.customers, measured.baristas, measured.workers);
    let brewing = |at_once: usize| format!("{at_once} of {baristas} baristas brewing at once");
    let mut lines = vec!["Key differences, as measured just now".to_owned()];
    if let Some(customer) = measured.customer {
        lines.extend([
            String::new(),
            format!("The customer's waiting: {n} customers, one café, {baristas} baristas"),
            row(
                "",
                "At the counter (synchronous)".into(),
                "As with a buzzer (asynchronous)".into(),
            ),
            row(
                "Waiting",
                format!("{}, one after another", human(customer.sync.wall)),
                format!("{}, all at once", human(customer.async_.wall)),
            ),
            row(
                "Brewing",
                brewing(customer.sync.at_once),
                brewing(customer.async_.at_once),
            ),
        ]);
    }
    if let Some(barista) = measured.barista {
        lines.extend([
            String::new(),
            format!(
                "The server's threads: {n} customers at once, {baristas} baristas on {workers} threads"
            ),
            row(
                "",
                "Synchronous (Flask-like)".into(),
                "Asynchronous (FastAPI-like)".into(),
            ),
            row(
                "Rush",
                format!("{}, ordered at once", human(barista.sync.wall)),
                format!("{}, ordered at once", human(barista.async_.wall)),
            ),
            row(
                "Efficiency",
                brewing(barista.sync.at_once),
                brewing(barista.async_.at_once),
            ),
            row(
                "Scalability",
                format!("{:.2} orders/s", barista.sync.per_second),
                format!("{:.2} orders/s", barista.async_.per_second),
            ),
        ]);
        if let (Some(sync), Some(async_)) = (barista.sync.menu, barista.async_.menu) {
            lines.push(row(
                "Menu",
                format!("GetMenu took {} in the rush", human(sync)),
                format!("GetMenu took {} in the rush", human(async_)),
            ));
        }
    }
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

    /// The part of `text` from the line starting `heading` to the next
    /// blank line.
    fn part<'t>(text: &'t str, heading: &str) -> &'t str {
        let start = text
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading:?} in\n{text}"));
        let rest = &text[start..];
        &rest[..rest.find("\n\n").unwrap_or(rest.len())]
    }

    #[test]
    fn each_half_has_its_own_part_and_columns_so_no_row_mixes_them() {
        let text = lines(&measured(true, true)).join("\n");
        let customer = part(&text, "The customer's waiting");
        let server = part(&text, "The server's threads");
        // The customer's part: one café, the counter against the buzzer, and
        // only the customer's numbers (the sequential run's 1 barista).
        assert!(
            customer.contains("At the counter (synchronous)"),
            "{customer}"
        );
        assert!(customer.contains("7.21s, one after another"), "{customer}");
        assert!(
            customer.contains("1 of 3 baristas brewing at once"),
            "{customer}"
        );
        for server_word in ["Flask", "FastAPI", "orders/s", "GetMenu", "3.6s"] {
            assert!(!customer.contains(server_word), "{server_word}: {customer}");
        }
        // The server's part: the blocking café against the async one, and
        // none of the customer's runs.
        assert!(server.contains("Synchronous (Flask-like)"), "{server}");
        assert!(server.contains("3.6s, ordered at once"), "{server}");
        assert!(
            server.contains("2 of 3 baristas brewing at once"),
            "{server}"
        );
        for customer_word in ["counter", "buzzer", "one after another", "7.21s"] {
            assert!(!server.contains(customer_word), "{customer_word}: {server}");
        }
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
