//! What else the café can do while a rush is on: a customer who only wants
//! the menu, and a look at the café's runtime from outside.
//!
//! `GetMenu` needs no barista: an async café answers it at once, however
//! busy its baristas are. A café whose baristas block their worker threads
//! cannot even read the request until a thread comes free, so the menu
//! waits behind the drinks. The probe measures exactly that, by the
//! customer's clock, on a connection of its own (another customer).
//!
//! The runtime sampler reads the café runtime's metrics from the CLI's side
//! (the café runs on a runtime of its own, see [`super::cafe`]), so it
//! keeps reading while the café's workers are blocked.

use std::time::Duration;

use cafe_domain::proto::v1::GetMenuRequest;
use serde::Serialize;
use tokio::{runtime::RuntimeMetrics, sync::watch, time::Instant};

use crate::{connection::Cafe, output::millis};

/// How long the probing customer waits after an answer before asking again.
pub const MENU_PAUSE: Duration = Duration::from_millis(100);

/// How often the runtime's metrics are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The menu calls made during one rush, by the customer's clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MenuTimes {
    /// How long each call took, in the order they were made.
    pub calls: Vec<Duration>,
    /// Calls that failed (counted, not timed).
    pub failed: usize,
}

impl MenuTimes {
    /// The slowest call, if any was answered.
    pub fn slowest(&self) -> Option<Duration> {
        self.calls.iter().copied().max()
    }
}

/// Asks `cafe` for its menu, one call at a time with [`MENU_PAUSE`] between
/// them, until `stop` turns true. A call in flight when it does is still
/// waited for: it was asked during the rush.
pub async fn menu_while(mut cafe: Cafe, mut stop: watch::Receiver<bool>) -> MenuTimes {
    let mut times = MenuTimes::default();
    loop {
        tokio::select! {
            // The rush ended: no new call.
            _ = stop.wait_for(|&stopped| stopped) => return times,
            () = tokio::time::sleep(MENU_PAUSE) => {}
        }
        let asked = Instant::now();
        match cafe.get_menu(GetMenuRequest {}).await {
            Ok(_) => times.calls.push(asked.elapsed()),
            Err(_) => times.failed += 1,
        }
    }
}

/// What the café's runtime looked like during a rush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeSeen {
    /// Worker threads of the café's runtime.
    pub workers: usize,
    /// The most tasks alive at once: open calls, baristas, the server's own.
    pub tasks_alive_max: usize,
}

/// Reads `metrics` every few milliseconds until `stop` turns true.
pub async fn runtime_while(
    metrics: RuntimeMetrics,
    mut stop: watch::Receiver<bool>,
) -> RuntimeSeen {
    let mut seen = RuntimeSeen {
        workers: metrics.num_workers(),
        tasks_alive_max: metrics.num_alive_tasks(),
    };
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = stop.wait_for(|&stopped| stopped) => return seen,
            _ = every.tick() => {
                seen.tasks_alive_max = seen.tasks_alive_max.max(metrics.num_alive_tasks());
            }
        }
    }
}

/// The menu times for `--json`.
#[derive(Debug, Serialize)]
pub struct MenuLine {
    /// How many calls were answered.
    pub calls: usize,
    /// How many failed.
    pub failed: usize,
    /// The slowest answered call.
    pub slowest_ms: Option<f64>,
}

impl From<&MenuTimes> for MenuLine {
    fn from(times: &MenuTimes) -> Self {
        MenuLine {
            calls: times.calls.len(),
            failed: times.failed,
            slowest_ms: times.slowest().map(millis),
        }
    }
}
