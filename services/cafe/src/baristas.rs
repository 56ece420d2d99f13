//! Who brews, and the loop that takes orders from the line to them.
//!
//! [`Brewers`] is the one choice the café makes about its baristas:
//! - **embedded** (the default): `--baristas` tasks named `Ana`, `Ben`, …,
//!   each taking the next order in line and brewing it in-process;
//! - **remote** (`--barista-endpoint`): one dispatcher that waits for a free
//!   barista on some `cafe-barista` replica, then hands it the next order
//!   ([`crate::remote`]); the replicas' free baristas set the pace.
//!
//! Either way this is where the waiting happens. A task spends almost all
//! its life in two `.await`s: waiting for an order ([`Orders::claim`]) and
//! waiting for the drink. While it waits, it is a parked future, not a
//! thread: the runtime's few worker threads run whoever has something to
//! do. That is why two baristas and a thousand customers waiting at the
//! counter cost a handful of threads, and why a café may have a hundred
//! thousand baristas: an order placed wakes exactly one idle one. The loop
//! is the same on every store: [`Orders`] does what the store needs (on a
//! shared line, claiming in the database and writing READY there first, so
//! two cafés never brew one order twice).
//!
//! # Back to back, on the clock
//!
//! The runtime's timer wakes a barista late (whole milliseconds, rounded
//! up; later on a busy runtime), and starting each brew's clock at that
//! wake-up would lose the lateness on every drink (docs/performance.md
//! measures it). So a barista with orders waiting keeps its brews back to
//! back *on the clock*: the next drink starts when the last one was due
//! (or when the order was taken in, if later), and the barista's day does
//! not drift. Only the timer's lateness is made up, up to [`TIMER_SLACK`]:
//! a barista woken later than that was really held up, and starts from
//! when it is back. No drink is ever made faster than its brew time.
//!
//! Each brew asks the faults in force ([`Orders::faults`]) how it goes: a
//! slow barista's drink takes FACTOR times as long, a flaky one's fails
//! half-way (FAILED: an embedded barista has no one to hand it to), and a
//! blocking one's sleeps its thread. The brew span says which fault hit.

use std::{sync::Arc, time::Duration};

use cafe_domain::brewing::{self, BrewMode};
use cafe_domain::menu::TimeScale;
use grpc_serving::Critical;
use grpc_telemetry::propagation::in_trace;
use tokio::{task::JoinSet, time::Instant};
use tracing::{debug, field::Empty, info, info_span, warn};

use crate::{book::OrderEntry, injected_panic, remote::RemoteBaristas, store::Orders};

/// How late a barista's timer may wake it and the lateness still count as
/// the timer's, made up by starting the next drink when the last one was
/// due (see "Back to back, on the clock" above). Beyond it, the barista was
/// held up and its next drink starts when it is back.
pub const TIMER_SLACK: Duration = Duration::from_millis(5);

/// Who brews the café's orders.
#[derive(Debug, Clone)]
pub enum Brewers {
    /// Baristas inside the café process.
    Embedded {
        /// Multiplier on every brew time.
        time_scale: TimeScale,
        /// How they wait while a drink brews.
        brew_mode: BrewMode,
    },
    /// `cafe-barista` replicas over gRPC.
    Remote(RemoteBaristas),
}

/// Starts the tasks taking orders from the line to `brewers`: `count`
/// embedded baristas, or the one remote dispatcher (`count` does not apply:
/// the replicas' baristas set the pace). Each ends when the café closes and
/// the line is empty, after finishing the drinks in hand; the returned set
/// lets the server wait for that while it shuts down. Each is one of the
/// café's `critical` parts.
///
/// The tasks have no span of their own: a span for a whole shift would be
/// one bar as long as the server's life, never finished, never exported.
/// Each *brew* gets a span instead, joined to the trace of the order it is
/// for (see [`OrderEntry::trace_context`]), so the barista's work shows in
/// the customer's trace.
pub fn start_shift(
    orders: &Orders,
    brewers: &Brewers,
    count: u32,
    critical: &Critical,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    // Each task is watched (`critical`): a shift that ends before the café
    // closes, or panics, leaves orders nobody brews, so it closes the café.
    match brewers {
        Brewers::Embedded {
            time_scale,
            brew_mode,
        } => {
            for index in 0..count as usize {
                let name: Arc<str> = Arc::from(brewing::barista_name(index));
                let shift = work(orders.clone(), Arc::clone(&name), *time_scale, *brew_mode);
                tasks.spawn(critical.watch(format!("barista {name}"), shift));
            }
        }
        Brewers::Remote(remote) => {
            let remote = remote.clone();
            let orders = orders.clone();
            // Boxed: a remote dispatcher's future is large (its brew tasks'
            // set, the gRPC calls it starts), and it lives for the shift.
            let shift = async move { Box::pin(remote.dispatch(orders)).await };
            tasks.spawn(critical.watch("the remote dispatcher", shift));
        }
    }
    tasks
}

/// An embedded barista's shift: the next order in line, brewed here, until
/// the café closes and its shift is over.
async fn work(orders: Orders, name: Arc<str>, time_scale: TimeScale, brew_mode: BrewMode) {
    // When the drink just made was due, if it was made to the end: the
    // next one may start from there (see "Back to back, on the clock").
    let mut free_since = None;
    while let Some(entry) = orders.claim(&name).await {
        injected_panic::step("barista");
        // This brew's span, a child of the call that placed the order (not
        // of whatever ran before on this task). Set the parent before the
        // span is first entered: after that it is fixed.
        // Without export, the order's context is made current instead, so
        // the brew's log lines still name the order's trace.
        let span = info_span!("brew", order.id = %entry.id(), barista = %name, fault = Empty, otel.status_code = Empty);
        let brewed = brew_here(&orders, &entry, &name, time_scale, brew_mode, free_since);
        free_since = in_trace(span, entry.trace_context().clone(), brewed).await;
    }
    info!(barista = %name, "shift over");
}

/// When an embedded barista free since `free_since` (the last drink's due
/// time, if it was made to the end) starts on `entry` now, on the clock:
/// when both it and the order were free, if its timer's lateness is all
/// that kept it (at most [`TIMER_SLACK`]); otherwise now.
fn start_on_the_clock(free_since: Option<Instant>, entry: &OrderEntry) -> Instant {
    let now = Instant::now();
    match free_since {
        Some(due) if now.saturating_duration_since(due) <= TIMER_SLACK => {
            due.max(entry.taken_in()).min(now)
        }
        _ => now,
    }
}

/// An embedded barista brews one order; returns when it was due, if it was
/// made to the end (not cancelled), for the next one to start from.
async fn brew_here(
    orders: &Orders,
    entry: &OrderEntry,
    name: &Arc<str>,
    time_scale: TimeScale,
    brew_mode: BrewMode,
    free_since: Option<Instant>,
) -> Option<Instant> {
    let start = start_on_the_clock(free_since, entry);
    if !orders.start(entry, Arc::clone(name)).await {
        // Cancelled between leaving the line and reaching us: still free.
        return free_since;
    }
    let cup = entry.request();
    let plan = orders.faults().plan_brew(name, brew_mode);
    let brew_time = plan.working_time(cup.drink.brew_time_for(cup.size, time_scale));
    let due = start + brew_time;
    let id = entry.id();
    let span = tracing::Span::current();
    if plan.spoils {
        span.record("fault", "flaky-barista");
    } else if plan.stretch > 1.0 {
        span.record("fault", "slow-barista");
    }
    debug!(order.id = %id, drink = cup.drink.id, size = %cup.size, ?brew_time, "brewing");

    // Brew, unless the order is cancelled first: then `select!` drops the
    // brewing future, which stops its timer, and we are free at once.
    // (A blocking brew cannot be interrupted: it never yields to let
    // `select!` look at the other branch. One more cost of blocking.)
    tokio::select! {
        () = brewing::brew_until(plan.mode, due) => {
            if plan.spoils {
                let reason = format!("{name} spoiled the drink half-way (fault flaky-barista)");
                span.record("otel.status_code", "error");
                warn!(order.id = %id, %reason, "brew failed");
                orders.fail(entry, &reason).await;
            } else if orders.ready_and_stay(entry, name).await {
                debug!(order.id = %id, "ready");
            }
            Some(due)
        }
        () = entry.stopped() => {
            info!(order.id = %id, "stopped: the order was cancelled");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::tests::{open_book, place};

    /// A café may have 100,000 baristas, each a task whose future is as
    /// large as the largest step of its loop, brewing or not. Wrappers
    /// written as `async fn`s keep the future they wrap twice, and the
    /// shared line's steps are large: unboxed, they made every barista's
    /// task several times this bound (`docs/performance.md`, "100,000
    /// buzzers"). Measured on the future, not the heap.
    #[test]
    fn a_baristas_task_stays_small() {
        let book = open_book(16);
        let entry = place(&book, "Ada");
        let orders = Orders::in_memory(book);
        let name: Arc<str> = Arc::from("Ana");
        let brew = std::mem::size_of_val(&brew_here(
            &orders,
            &entry,
            &name,
            TimeScale::REAL,
            BrewMode::Async,
            None,
        ));
        let shift = work(orders.clone(), name, TimeScale::REAL, BrewMode::Async);
        let task = std::mem::size_of_val(&Critical::new().watch("barista Ana", shift));
        assert!(brew <= 1024, "a brew's future is {brew} bytes");
        assert!(task <= 2048, "a barista's task's future is {task} bytes");
    }
}
