//! The timeline: one row per customer, a bar from ordering to holding the
//! drink, drawn on a shared time axis so the shape of a run tells its story.
//!
//! ```text
//!  #1 │████ 1.2s                 sequential: each customer starts when the
//!  #2 │    ████ 1.2s             one before is served, a staircase whose
//!  #3 │        ████ 1.2s         length is the SUM of the waits.
//!
//!  #1 │████ 1.2s                 concurrent: everyone orders at once, a fan
//!  #2 │░░░░████ 2.4s             whose length is the LONGEST wait, set by
//!  #3 │░░░░░░░░████ 3.6s         how many baristas there are.
//! ```
//!
//! How to read it (`░` in line, `█` brewing, `·` anything else, and where
//! the café's stages sit in the customer's bar): `docs/lesson.md`,
//! "Reading the timeline".
//!
//! [`render`] is a pure function of its rows and a width, so tests can
//! compare its output with committed text. With more rows than fit, rows are
//! grouped (`1-9`), each cell showing what most of the group was doing, so
//! the staircase and the fan survive at 200 customers and 80 columns.
//! [`svg`] draws the same rows, placed the same way, as a picture.

pub mod svg;

use std::time::Duration;

use crate::output::human;

/// One customer's order, as durations from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Who, e.g. `#3`.
    pub label: String,
    /// When the request was sent.
    pub sent: Duration,
    /// When the response arrived.
    pub received: Duration,
    /// Time in line, by the café's clock (`started_at - placed_at`).
    pub waiting: Duration,
    /// Time brewing, by the café's clock (`ready_at - started_at`).
    pub brewing: Duration,
    /// When the café placed the order, on this timeline's axis (its
    /// `placed_at` read against the customer's wall clock at the start of
    /// the run), if known. Used only when it falls inside the customer's
    /// wait, that is when the two clocks agree.
    pub placed: Option<Duration>,
}

/// How far the café's clock may disagree with the customer's before its
/// timestamps are not trusted for placement.
const CLOCK_TOLERANCE: Duration = Duration::from_millis(5);

impl Row {
    /// How long the customer waited, by their own clock.
    pub fn latency(&self) -> Duration {
        self.received.saturating_sub(self.sent)
    }

    /// When the drink was ready on this timeline's axis: by the café's
    /// clock when it agrees with the customer's, else when the answer came.
    pub fn ready(&self) -> Duration {
        self.segments().brew_end
    }

    /// The waiting and brewing segments, clipped to the outer bar: at the
    /// café's own times when its clock agrees with the customer's, else
    /// backwards from the moment the response arrived.
    fn segments(&self) -> Segments {
        let (sent, received) = (self.sent, self.received.max(self.sent));
        if let Some(placed) = self.placed {
            let brew_end = placed + self.waiting + self.brewing;
            if placed + CLOCK_TOLERANCE >= sent && brew_end <= received + CLOCK_TOLERANCE {
                let wait_start = placed.clamp(sent, received);
                let brew_start = (placed + self.waiting).clamp(wait_start, received);
                return Segments {
                    sent,
                    wait_start,
                    brew_start,
                    brew_end: brew_end.clamp(brew_start, received),
                    received,
                };
            }
        }
        let brew_start = received.saturating_sub(self.brewing).max(sent);
        let wait_start = brew_start.saturating_sub(self.waiting).max(sent);
        Segments {
            sent,
            wait_start,
            brew_start,
            brew_end: received,
            received,
        }
    }
}

/// A row's stages on the time axis: on the wire until `wait_start`, in line
/// until `brew_start`, brewing until `brew_end`, then on the wire again (or
/// waiting for the café to send the answer) until `received`.
#[derive(Debug, Clone, Copy)]
struct Segments {
    sent: Duration,
    wait_start: Duration,
    brew_start: Duration,
    brew_end: Duration,
    received: Duration,
}

/// What a cell of the timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Empty,
    Wire,
    Waiting,
    Brewing,
}

impl Cell {
    fn glyph(self) -> char {
        match self {
            Cell::Empty => ' ',
            Cell::Wire => '·',
            Cell::Waiting => '░',
            Cell::Brewing => '█',
        }
    }
}

/// The most rows drawn before customers are grouped.
pub const MAX_ROWS: usize = 24;

/// The legend printed above every timeline.
pub const LEGEND: &str =
    "░ in line  █ brewing  · on the wire, or the café too busy to read or answer";

/// The legend when [`LEGEND`] is wider than the timeline.
pub const SHORT_LEGEND: &str = "░ in line  █ brewing  · on the wire";

/// Draws `rows` (in the order given) on a time axis from 0 to `axis_end`
/// (or the last arrival, if later), in at most `width` columns. Returns the
/// lines joined with `\n`, with a trailing newline.
pub fn render(rows: &[Row], width: usize, axis_end: Option<Duration>) -> String {
    let mut out = String::new();
    out.push_str(if LEGEND.chars().count() <= width {
        LEGEND
    } else {
        SHORT_LEGEND
    });
    out.push('\n');
    if rows.is_empty() {
        out.push_str("(no orders)\n");
        return out;
    }

    let group_size = rows.len().div_ceil(MAX_ROWS);
    let groups: Vec<&[Row]> = rows.chunks(group_size).collect();
    if group_size > 1 {
        let long =
            format!("each row: up to {group_size} customers in the order shown, its longest time");
        let note = if long.chars().count() <= width {
            long
        } else {
            format!("rows of up to {group_size} customers")
        };
        out.push_str(&fit(&note, width));
        out.push('\n');
    }

    // Grouped rows are labelled by their place in the order shown (which
    // for a concurrent run is not the customers' numbers).
    let labels: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, group)| match group {
            [only] => only.label.clone(),
            _ => format!("{}-{}", i * group_size + 1, i * group_size + group.len()),
        })
        .collect();
    let times: Vec<String> = groups
        .iter()
        .map(|group| human(group.iter().map(Row::latency).max().unwrap_or_default()))
        .collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let time_width = times.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    // label, " │", the bar, " ", the time.
    let bar_width = width
        .saturating_sub(label_width + 2 + 1 + time_width)
        .max(10);

    let last = rows.iter().map(|r| r.received).max().unwrap_or_default();
    let span = axis_end
        .unwrap_or_default()
        .max(last)
        .max(Duration::from_millis(1));
    let cell = span.as_secs_f64() / bar_width as f64;

    for ((group, label), time) in groups.iter().zip(&labels).zip(&times) {
        let cells = draw_group(group, bar_width, cell);
        let drawn = cells
            .iter()
            .rposition(|&c| c != Cell::Empty)
            .map_or(0, |i| i + 1);
        let bar: String = cells[..drawn].iter().map(|c| c.glyph()).collect();
        out.push_str(&format!("{label:>label_width$} │{bar} {time}\n"));
    }

    let (axis, ticks) = axis(span, bar_width, cell, label_width + 1);
    out.push_str(&format!("{:label_width$} └{axis}\n", ""));
    out.push_str(ticks.trim_end());
    out.push('\n');
    out
}

/// The cells of one row: each cell shows what most of the group's customers
/// who were waiting at that time were doing.
fn draw_group(group: &[Row], bar_width: usize, cell: f64) -> Vec<Cell> {
    let drawn: Vec<(usize, usize, Segments)> = group
        .iter()
        .map(|row| {
            let segments = row.segments();
            let (start, end) = columns(segments.sent, segments.received, bar_width, cell);
            (start, end, segments)
        })
        .collect();
    (0..bar_width)
        .map(|column| {
            let mut votes = [0usize; 4];
            for &(start, end, segments) in &drawn {
                if (start..end).contains(&column) {
                    votes[state_at(segments, column, cell) as usize] += 1;
                }
            }
            // The state most of the active customers are in; ties go to the
            // later stage (brewing over waiting over the wire).
            [Cell::Brewing, Cell::Waiting, Cell::Wire]
                .into_iter()
                .filter(|&c| votes[c as usize] > 0)
                .max_by_key(|&c| (votes[c as usize], c))
                .unwrap_or(Cell::Empty)
        })
        .collect()
}

/// The cells a bar from `from` to `to` covers: rounded to the nearest cell
/// edge so back-to-back bars do not overlap, and never less than one cell.
fn columns(from: Duration, to: Duration, bar_width: usize, cell: f64) -> (usize, usize) {
    let edge = |t: Duration| ((t.as_secs_f64() / cell).round() as usize).min(bar_width);
    let start = edge(from).min(bar_width - 1);
    let end = edge(to).max(start + 1);
    (start, end)
}

/// Which stage covers most of `column`.
fn state_at(s: Segments, column: usize, cell: f64) -> Cell {
    let (lo, hi) = (column as f64 * cell, (column + 1) as f64 * cell);
    let overlap =
        |a: Duration, b: Duration| (hi.min(b.as_secs_f64()) - lo.max(a.as_secs_f64())).max(0.0);
    let stages = [
        (
            Cell::Wire,
            overlap(s.sent, s.wait_start) + overlap(s.brew_end, s.received),
        ),
        (Cell::Waiting, overlap(s.wait_start, s.brew_start)),
        (Cell::Brewing, overlap(s.brew_start, s.brew_end)),
    ];
    let best = stages
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .expect("three stages");
    if best.1 > 0.0 {
        return best.0;
    }
    // The bar was widened to one cell: show the stage nearest this cell.
    let middle = Duration::from_secs_f64((lo + hi) / 2.0).clamp(s.sent, s.received);
    if (s.brew_start..s.brew_end).contains(&middle) {
        Cell::Brewing
    } else if (s.wait_start..s.brew_start).contains(&middle) {
        Cell::Waiting
    } else if s.brew_end > s.brew_start {
        Cell::Brewing
    } else {
        Cell::Wire
    }
}

/// The axis line (`─` with `┴` at each tick) and the tick labels under it,
/// indented by `indent` columns.
fn axis(span: Duration, bar_width: usize, cell: f64, indent: usize) -> (String, String) {
    let step = tick_step(span, cell);
    let mut line: Vec<char> = vec!['─'; bar_width];
    let mut labels: Vec<char> = vec![' '; indent + bar_width + 2];
    let mut free_from = 0; // first column a new label may use
    let mut t = Duration::ZERO;
    while t <= span {
        let column = (t.as_secs_f64() / cell).round() as usize;
        if column > bar_width {
            break;
        }
        if column > 0 {
            line[column - 1] = '┴';
        }
        let text: Vec<char> = human(t).chars().collect();
        // Labels start under their tick; the last one is pulled left to fit.
        let start = (indent + column).min(labels.len() - text.len());
        if start >= free_from {
            labels[start..start + text.len()].copy_from_slice(&text);
            free_from = start + text.len() + 1;
        }
        t += step;
    }
    (line.into_iter().collect(), labels.into_iter().collect())
}

/// The smallest round step whose ticks are far enough apart for labels.
fn tick_step(span: Duration, cell: f64) -> Duration {
    const STEPS_MS: [u64; 22] = [
        1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
        60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000,
    ];
    let widest = human(span).chars().count().max(5) + 2;
    STEPS_MS
        .iter()
        .map(|&ms| Duration::from_millis(ms))
        .find(|step| step.as_secs_f64() / cell >= widest as f64)
        .unwrap_or(Duration::from_secs(3_600))
}

/// Cuts `text` to `width` characters.
fn fit(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Customer `i`'s row: sent at `sent` ms, `wait` ms in line, `brew` ms
    /// brewing (the SVG renderer's tests use it too).
    pub(super) fn row(i: usize, sent: u64, wait: u64, brew: u64) -> Row {
        Row {
            label: format!("#{i}"),
            sent: Duration::from_millis(sent),
            received: Duration::from_millis(sent + wait + brew),
            waiting: Duration::from_millis(wait),
            brewing: Duration::from_millis(brew),
            placed: None,
        }
    }

    #[test]
    fn back_to_back_bars_make_a_staircase_without_overlap() {
        let rows: Vec<Row> = (0..4)
            .map(|i| row(i + 1, i as u64 * 1000, 0, 1000))
            .collect();
        let text = render(&rows, 60, None);
        let bars: Vec<&str> = text.lines().skip(1).take(4).collect();
        // Each bar starts exactly where the one before ended: no gap, no
        // overlap, whatever the rounding.
        let mut ended = 0;
        for bar in bars {
            let body = bar.split('│').nth(1).unwrap();
            let leading = body.chars().take_while(|&c| c == ' ').count();
            let filled = body.chars().filter(|&c| c == '█').count();
            assert_eq!(leading, ended, "{text}");
            assert!(filled >= 12, "{text}");
            ended = leading + filled;
        }
    }

    #[test]
    fn queue_wait_is_drawn_before_brewing() {
        let text = render(&[row(1, 0, 1000, 1000)], 40, None);
        let body = text.lines().nth(1).unwrap().split('│').nth(1).unwrap();
        let first_brew = body.find('█').unwrap();
        assert!(body[..first_brew].chars().all(|c| c == '░'), "{text}");
    }
}
