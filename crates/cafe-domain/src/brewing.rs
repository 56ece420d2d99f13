//! How a barista spends the brew time, and why it matters *how*.
//!
//! Brewing is waiting: the espresso machine runs and the barista stands by.
//! [`BrewMode::Async`] waits with `tokio::time::sleep`, which parks the task
//! and hands the runtime thread to other work: a thousand drinks brewing cost
//! a thousand small timers, not a thousand threads. [`BrewMode::Blocking`] is
//! the anti-pattern kept here to be seen: `std::thread::sleep` holds the
//! runtime's worker thread hostage, so with W workers at most W drinks make
//! progress and everything else the server does (the menu, health checks)
//! waits behind them.

use std::time::Duration;

/// How a barista waits while a drink brews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BrewMode {
    /// Await a timer: the worker thread is free for other requests meanwhile.
    #[default]
    Async,
    /// Block the worker thread for the whole brew: the teaching anti-pattern.
    Blocking,
}

impl BrewMode {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BrewMode::Async => "async",
            BrewMode::Blocking => "blocking",
        }
    }
}

/// Spends `brew_time` making one drink.
pub async fn brew(mode: BrewMode, brew_time: Duration) {
    brew_until(mode, tokio::time::Instant::now() + brew_time).await;
}

/// Makes one drink that is done at `done`: for a barista who keeps its
/// brews back to back on the clock (see the café's `baristas` module).
pub async fn brew_until(mode: BrewMode, done: tokio::time::Instant) {
    match mode {
        BrewMode::Async => tokio::time::sleep_until(done).await,
        BrewMode::Blocking => {
            let brew_time = done.saturating_duration_since(tokio::time::Instant::now());
            // ANTI-PATTERN, on purpose (`--brew-mode blocking`): this sleeps
            // the runtime's worker thread itself. No other task can run on it
            // until the drink is done, so the server stalls once every worker
            // is brewing. Real blocking work belongs in
            // `tokio::task::spawn_blocking`; waiting belongs in `sleep().await`.
            std::thread::sleep(brew_time);
        }
    }
}

/// First names of the café's baristas, given out in order.
const NAMES: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dev", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea",
];

/// The name of barista number `index` (from 0): `Ana`, `Ben`, …, and
/// `Ana 2`, `Ben 2`, … once the names run out.
pub fn barista_name(index: usize) -> String {
    let name = NAMES[index % NAMES.len()];
    match index / NAMES.len() {
        0 => name.to_owned(),
        round => format!("{name} {}", round + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_even_past_the_list() {
        let names: Vec<String> = (0..30).map(barista_name).collect();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(name), "{name} twice");
        }
        assert_eq!(barista_name(0), "Ana");
        assert_eq!(barista_name(12), "Ana 2");
    }

    #[tokio::test(start_paused = true)]
    async fn async_brewing_takes_the_brew_time_without_a_thread() {
        let started = tokio::time::Instant::now();
        brew(BrewMode::Async, Duration::from_secs(40)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(40));
    }
}
