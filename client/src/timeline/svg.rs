//! The timeline as a picture: the same rows, placed the same way as on the
//! terminal, drawn as SVG rectangles for a slide or the README.
//!
//! Hand-written SVG (a few `<rect>`s and `<text>`s), not a plotting crate:
//! the picture is simple, and a pure function of its rows renders the same
//! bytes every time, so a golden test can hold it to what is committed.
//! Every panel shares one time axis, so a staircase and a fan drawn one
//! above the other compare by eye, as they do in the terminal.

use std::{fmt::Write as _, time::Duration};

use super::{Row, tick_step};
use crate::output::human;

/// One timeline of the picture: a title over its rows.
#[derive(Debug, Clone)]
pub struct Panel<'a> {
    /// What the run was, e.g. `concurrent: 6 × medium latte`.
    pub title: String,
    /// One row per customer, in the order to draw them.
    pub rows: &'a [Row],
}

/// Total width of the picture, in SVG user units (pixels at 100 %).
const WIDTH: f64 = 760.0;
const MARGIN: f64 = 12.0;
/// The label column (`#12`) left of the bars.
const LABEL: f64 = 44.0;
/// Room right of the bars for the last row's time.
const TIME: f64 = 58.0;
/// A row's height and the gap under it, up to [`FULL_ROWS`] rows.
const ROW: f64 = 16.0;
const GAP: f64 = 4.0;
/// Past this many rows a panel's rows get thinner (and lose their labels),
/// so that 200 customers still make a picture of sensible height.
const FULL_ROWS: usize = 30;
const FONT: &str = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";

/// The colours of the three stages, as in the terminal's `·`, `░`, `█`.
const WIRE: &str = "#c9c9c9";
const WAITING: &str = "#f2c94c";
const BREWING: &str = "#6f4e37";

/// Draws `panels` one above the other on a shared axis from 0 to
/// `axis_end` (or the last answer, if later). Returns a whole SVG document.
pub fn render(panels: &[Panel<'_>], axis_end: Option<Duration>) -> String {
    let last = panels
        .iter()
        .flat_map(|panel| panel.rows.iter().map(|row| row.received))
        .max()
        .unwrap_or_default();
    let span = axis_end
        .unwrap_or_default()
        .max(last)
        .max(Duration::from_millis(1));
    let bar_width = WIDTH - 2.0 * MARGIN - LABEL - TIME;
    let x0 = MARGIN + LABEL;
    let x = |t: Duration| x0 + t.as_secs_f64() / span.as_secs_f64() * bar_width;

    let mut body = String::new();
    let mut y = MARGIN;
    legend(&mut body, x0, y);
    y += 26.0;
    for panel in panels {
        y += 14.0;
        let _ = writeln!(
            body,
            r#"<text x="{MARGIN}" y="{y:.1}" font-weight="bold">{}</text>"#,
            escape(&panel.title)
        );
        y += 8.0;
        let (row_height, gap) = match panel.rows.len() {
            n if n <= FULL_ROWS => (ROW, GAP),
            n => (((FULL_ROWS as f64) * (ROW + GAP) / n as f64).max(2.0), 0.0),
        };
        let labelled = row_height >= ROW;
        if panel.rows.is_empty() {
            y += 14.0;
            let _ = writeln!(body, r#"<text x="{x0:.1}" y="{y:.1}">(no orders)</text>"#);
        }
        for row in panel.rows {
            let s = row.segments();
            let stages = [
                (WIRE, s.sent, s.wait_start),
                (WAITING, s.wait_start, s.brew_start),
                (BREWING, s.brew_start, s.brew_end),
                (WIRE, s.brew_end, s.received),
            ];
            for (colour, from, to) in stages {
                if to > from {
                    let _ = writeln!(
                        body,
                        r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{row_height:.1}" fill="{colour}"/>"#,
                        x(from),
                        (x(to) - x(from)).max(0.5)
                    );
                }
            }
            if labelled {
                let text_y = y + row_height - 4.0;
                let _ = writeln!(
                    body,
                    r#"<text x="{:.1}" y="{text_y:.1}" text-anchor="end">{}</text>"#,
                    x0 - 6.0,
                    escape(&row.label)
                );
                let _ = writeln!(
                    body,
                    r##"<text x="{:.1}" y="{text_y:.1}" fill="#555">{}</text>"##,
                    x(s.received) + 4.0,
                    human(row.latency())
                );
            }
            y += row_height + gap;
        }
        y = axis(&mut body, span, x0, bar_width, y + 2.0);
    }
    let height = y + MARGIN;
    format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h:.0}" viewBox="0 0 {w} {h:.0}" font-family="{font}" font-size="12">"#,
            "\n",
            r#"<rect width="100%" height="100%" fill="white"/>"#,
            "\n{body}</svg>\n"
        ),
        w = WIDTH,
        h = height,
        font = FONT,
        body = body
    )
}

/// The key to the colours, at the top.
fn legend(body: &mut String, x0: f64, y: f64) {
    let mut x = x0;
    for (colour, what) in [
        (WAITING, "in line"),
        (BREWING, "brewing"),
        (WIRE, "on the wire, or the café too busy to read or answer"),
    ] {
        let _ = writeln!(
            body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="14" height="12" fill="{colour}"/>"#
        );
        let _ = writeln!(
            body,
            r#"<text x="{:.1}" y="{:.1}">{what}</text>"#,
            x + 20.0,
            y + 10.0
        );
        x += 20.0 + 8.0 * what.len() as f64 + 24.0;
    }
}

/// The time axis under a panel, with a labelled tick every round step.
/// Returns the `y` under it.
fn axis(body: &mut String, span: Duration, x0: f64, bar_width: f64, y: f64) -> f64 {
    let _ = writeln!(
        body,
        r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333"/>"##,
        x0 + bar_width
    );
    // A tick label needs about 7 characters of 10 units: the terminal's
    // rule, with 10 units for a column.
    let step = tick_step(span, span.as_secs_f64() * 10.0 / bar_width);
    let mut t = Duration::ZERO;
    while t <= span {
        let tx = x0 + t.as_secs_f64() / span.as_secs_f64() * bar_width;
        let _ = writeln!(
            body,
            r##"<line x1="{tx:.1}" y1="{y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#333"/>"##,
            y + 4.0
        );
        let _ = writeln!(
            body,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#333">{}</text>"##,
            y + 17.0,
            human(t)
        );
        t += step;
    }
    y + 24.0
}

/// Text made safe for XML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::tests::row;

    #[test]
    fn a_fan_starts_every_bar_at_the_same_x_and_a_staircase_does_not() {
        let fan = [row(1, 0, 0, 1000), row(2, 0, 1000, 1000)];
        let staircase = [row(1, 0, 0, 1000), row(2, 1000, 0, 1000)];
        let starts = |rows: &[Row]| -> Vec<String> {
            render(
                &[Panel {
                    title: "t".into(),
                    rows,
                }],
                None,
            )
            .lines()
            .filter(|l| l.contains(WIRE) || l.contains(WAITING) || l.contains(BREWING))
            .filter(|l| l.contains("height=\"16.0\""))
            .map(|l| l.split('"').nth(1).unwrap().to_owned())
            .collect()
        };
        // Fan: the first stage of both rows starts at the left edge.
        let fan = starts(&fan);
        assert_eq!(fan[0], fan[1], "{fan:?}");
        // Staircase: the second row starts where the first ended.
        let staircase = starts(&staircase);
        assert_ne!(staircase[0], staircase[1], "{staircase:?}");
    }

    #[test]
    fn titles_are_escaped() {
        let svg = render(
            &[Panel {
                title: "a <b> & c".into(),
                rows: &[],
            }],
            None,
        );
        assert!(svg.contains("a &lt;b&gt; &amp; c"), "{svg}");
    }
}
