//! How the CLI talks to a person or a program: human units, JSON lines,
//! and the terminal niceties (spinner, width, in-place redraws) that only
//! make sense when someone is watching.
//!
//! Results go to stdout; spinners, progress and errors go to stderr, so
//! `cafe rush --json | jq` gets nothing but JSON. Under `--json` an error is
//! one more JSON line on stdout instead, in the same envelope as every
//! result: a script reads one stream, whose last line says how it ended.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, SystemTime},
};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Where and how results are printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// stdout is a terminal: live redraws are welcome.
    pub stdout_tty: bool,
    /// stderr is a terminal: spinners are welcome.
    pub stderr_tty: bool,
    /// `NO_COLOR` is set.
    pub no_color: bool,
    /// Columns available for drawings such as the timeline.
    pub width: usize,
    /// Traces are exported, so `order` and `rush` show a link to theirs.
    pub trace_links: bool,
}

/// The width used when stdout is not a terminal.
pub const DEFAULT_WIDTH: usize = 80;

impl Output {
    /// Looks at the real terminal (or the lack of one).
    pub fn detect(json: bool) -> Self {
        let stdout_tty = std::io::stdout().is_terminal();
        let width = if stdout_tty {
            console::Term::stdout()
                .size_checked()
                .map(|(_rows, cols)| usize::from(cols))
                .unwrap_or(DEFAULT_WIDTH)
        } else {
            DEFAULT_WIDTH
        };
        Output {
            json,
            stdout_tty,
            stderr_tty: std::io::stderr().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            width: width.max(40),
            trace_links: false,
        }
    }

    /// The Jaeger link for `trace_id` (from the café's `x-trace-id`), when
    /// traces are exported: without export the trace exists only in the
    /// processes' memory and a link would lead nowhere. A café that does not
    /// trace sends no `x-trace-id`; then the link is to the current span's
    /// trace, which holds the CLI's side only.
    pub fn trace_url(&self, trace_id: Option<&str>) -> Option<String> {
        if !self.trace_links {
            return None;
        }
        let trace_id = trace_id
            .map(str::to_owned)
            .or_else(|| grpc_telemetry::current_trace_id().map(|id| id.to_string()))?;
        Some(grpc_telemetry::jaeger_trace_url(&trace_id))
    }

    /// Prints `trace: <link>` (text mode), when there is a link.
    pub fn trace_line(&self, url: Option<&str>) -> std::io::Result<()> {
        match url {
            Some(url) => self.line(format!("trace: {url}")),
            None => Ok(()),
        }
    }

    /// Prints a line of text (not in JSON mode).
    pub fn line(&self, text: impl AsRef<str>) -> std::io::Result<()> {
        if !self.json {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", text.as_ref())?;
            out.flush()?;
        }
        Ok(())
    }

    /// Prints one event as one JSON line, in the one envelope every
    /// command and error uses (in JSON mode only): `{"event": KIND, ...}`,
    /// the event's kind, then `fields`' own fields beside it. Each kind
    /// always has the same fields; docs/cli.md lists them.
    pub fn json<T: Serialize>(&self, event: &str, fields: &T) -> std::io::Result<()> {
        if self.json {
            print_json(event, fields)?;
        }
        Ok(())
    }
}

/// One line of the JSON envelope: `fields` flattened beside `event`.
#[derive(Serialize)]
struct Envelope<'a, T> {
    event: &'a str,
    #[serde(flatten)]
    fields: &'a T,
}

/// Prints `{"event": event, ...fields}` on one line of stdout. (For the
/// CLI's own errors before an [`Output`] exists, too: a bad command line.)
pub fn print_json<T: Serialize>(event: &str, fields: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &Envelope { event, fields }).map_err(std::io::Error::other)?;
    writeln!(out)?;
    out.flush()
}

impl Output {
    /// A spinner on stderr showing `message` and the time elapsed, or a
    /// hidden one when nobody is watching (piped, or `--json`).
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        if !self.stderr_tty || self.json {
            return ProgressBar::hidden();
        }
        let template = if self.no_color {
            "{spinner} {msg} {waited}"
        } else {
            "{spinner:.yellow} {msg} {waited:.dim}"
        };
        let spinner = ProgressBar::new_spinner()
            .with_style(
                ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .with_key(
                        "waited",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
                        },
                    )
                    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            )
            .with_message(message.into());
        spinner.enable_steady_tick(Duration::from_millis(80));
        spinner
    }
}

impl Output {
    /// Removes a spinner from the screen. (After a Ctrl-C, a terminal that
    /// echoes `^C` may leave the spinner's last frame in place.)
    pub fn clear_spinner(&self, spinner: &ProgressBar) {
        spinner.finish_and_clear();
    }
}

/// A duration in the unit a person reads best: `850ms`, `2.03s`, `12.5s`,
/// `3m 05s`, `2h 06m`. A round value (a whole number of milliseconds, such
/// as a deadline or a tick on an axis) drops its trailing zeros (`3s`,
/// `1.5s`); a measured one keeps them (`12.0s`), so it never looks rounder
/// than it was.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if duration.is_zero() {
        return "0s".into();
    }
    let round = duration.subsec_nanos().is_multiple_of(1_000_000);
    let shown = |number: String| if round { trim(number) } else { number };
    if secs < 1.0 {
        let ms = secs * 1000.0;
        if ms < 10.0 {
            return format!("{}ms", trim(format!("{ms:.1}")));
        }
        return format!("{ms:.0}ms");
    }
    if secs < 60.0 {
        let digits = if secs < 10.0 { 2 } else { 1 };
        return format!("{}s", shown(format!("{secs:.digits$}")));
    }
    let whole = duration.as_secs();
    if whole < 3600 {
        format!("{}m {:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h {:02}m", whole / 3600, whole % 3600 / 60)
    }
}

fn trim(number: String) -> String {
    if number.contains('.') {
        number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        number
    }
}

/// Milliseconds as a float, the unit JSON output uses.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// A time as RFC 3339 (UTC, milliseconds), the format JSON output uses.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let ms = Duration::from_millis;
        assert_eq!(human(ms(0)), "0s");
        assert_eq!(human(Duration::from_micros(2500)), "2.5ms");
        assert_eq!(human(ms(850)), "850ms");
        assert_eq!(human(ms(3000)), "3s");
        assert_eq!(human(ms(2034)), "2.03s");
        assert_eq!(human(ms(12_540)), "12.5s");
        assert_eq!(human(ms(1_500)), "1.5s");
        // Measured values keep their zeros: they were not round.
        assert_eq!(human(Duration::from_nanos(12_001_234_567)), "12.0s");
        assert_eq!(human(Duration::from_nanos(2_000_400_000)), "2.00s");
        assert_eq!(human(ms(185_000)), "3m 05s");
        assert_eq!(human(ms(7_598_000)), "2h 06m");
    }
}
