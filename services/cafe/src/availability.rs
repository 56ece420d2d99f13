//! Whether the café takes new orders right now, held in one place: the book
//! asks it before taking an order, and it is the only writer of the café's
//! gRPC health.
//!
//! Three things used to decide this apart (the remote baristas' registry,
//! their health reporter and the shutdown sequence), and needed a comment on
//! who must go first so that health could not turn `SERVING` again after
//! closing. Here the answer is one value in a `tokio::sync::watch` channel:
//!
//! ```text
//!   Open ⇄ NoBarista(why) ──close()──► Closed   (Closed is for good)
//!   Open ⇄ StoreUnwritable(why) ─┘
//! ```
//!
//! The remote baristas' registry moves it between `Open` and `NoBarista`,
//! the order store's writer between `Open` and `StoreUnwritable` (the two
//! are kept apart, so one coming back does not hide the other); closing
//! moves it to `Closed`, and nothing moves it back: a late "a
//! barista is up" is ignored inside the channel's own lock
//! (`send_if_modified`), so there is no order of calls to get wrong. The
//! health reporter ([`Availability::report_health`]) only follows the
//! channel, so it always reports the latest value, never a stale one.

use cafe_domain::proto::v1::cafe_server::SERVICE_NAME as CAFE_SERVICE;
use tokio::{sync::watch, task::JoinHandle};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::error::CafeError;

/// Whether the café takes orders: open unless closed or something it
/// needs is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    /// Closing or closed: no new orders, ever again.
    closed: bool,
    /// No barista can be reached (remote baristas only), for this reason.
    no_barista: Option<String>,
    /// The order store cannot be written, for this reason: an order could
    /// not be kept, so none is taken.
    store_unwritable: Option<String>,
}

impl State {
    fn is_open(&self) -> bool {
        !self.closed && self.no_barista.is_none() && self.store_unwritable.is_none()
    }
}

/// The café's availability, shared by the book, the remote baristas and the
/// health reporter.
#[derive(Debug)]
pub struct Availability {
    state: watch::Sender<State>,
}

impl Default for Availability {
    fn default() -> Self {
        Self::new()
    }
}

impl Availability {
    /// An open café.
    pub fn new() -> Self {
        Availability {
            state: watch::Sender::new(State::default()),
        }
    }

    /// Whether a new order may be taken; if not, what its customer is told.
    pub fn check(&self) -> Result<(), CafeError> {
        let state = self.state.borrow();
        if state.closed {
            Err(CafeError::Closing)
        } else if let Some(why) = &state.store_unwritable {
            Err(CafeError::StoreUnwritable(why.clone()))
        } else if let Some(why) = &state.no_barista {
            Err(CafeError::NoBarista(why.clone()))
        } else {
            Ok(())
        }
    }

    /// Some barista can be reached again: orders are taken (unless the café
    /// has closed meanwhile).
    pub fn barista_reachable(&self) {
        self.set(|state| &mut state.no_barista, None);
    }

    /// No barista can be reached: new orders are refused with `why`
    /// (unless the café has closed meanwhile).
    pub fn no_barista(&self, why: String) {
        self.set(|state| &mut state.no_barista, Some(why));
    }

    /// The order store cannot be written: new orders are refused with
    /// `why` until it can (unless the café has closed meanwhile).
    pub fn store_unwritable(&self, why: String) {
        self.set(|state| &mut state.store_unwritable, Some(why));
    }

    /// The order store can be written again.
    pub fn store_writable(&self) {
        self.set(|state| &mut state.store_unwritable, None);
    }

    /// Sets one of the reasons not to take orders.
    fn set(&self, reason: impl FnOnce(&mut State) -> &mut Option<String>, new: Option<String>) {
        // Checked and changed under the channel's lock: a change that races
        // with `close` either lands before it or is dropped, never after.
        self.state.send_if_modified(|state| {
            if state.closed {
                return false;
            }
            let reason = reason(state);
            if *reason == new {
                return false;
            }
            *reason = new;
            true
        });
    }

    /// Closes the café for good: every new order is refused from now on.
    /// Returns false if it was closed already.
    pub fn close(&self) -> bool {
        self.state.send_if_modified(|state| {
            let was_open = !state.closed;
            state.closed = true;
            was_open
        })
    }

    /// Whether the café has closed.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// Resolves once the café has closed.
    pub async fn closed(&self) {
        let mut state = self.state.subscribe();
        // `wait_for` looks at the current value first; the sender lives in
        // `self`, so the channel cannot close while we wait.
        let _ = state.wait_for(|state| state.closed).await;
    }

    /// Makes `health` follow the café's availability: `SERVING` while open,
    /// `NOT_SERVING` while no barista can be reached and once closed, for
    /// both the `cafe.v1.Cafe` service and the whole server (`""`).
    ///
    /// The current status is written before this returns, so a server
    /// started afterwards never shows a stale one; a task then follows every
    /// change. It ends once it has reported the café closed, so awaiting the
    /// returned handle is how a shutdown knows health says `NOT_SERVING`.
    /// This is the only writer of the café's health.
    pub async fn report_health(&self, health: HealthReporter) -> JoinHandle<()> {
        let mut state = self.state.subscribe();
        // Copied out: the channel's read lock is never held across `.await`.
        let now = state.borrow_and_update().clone();
        let closed = report(&health, &now).await;
        tokio::spawn(async move {
            if closed {
                return;
            }
            // Ends with an error only if the sender, and so the café, is
            // gone: nobody is left to report on.
            while state.changed().await.is_ok() {
                let now = state.borrow_and_update().clone();
                if report(&health, &now).await {
                    return;
                }
            }
        })
    }
}

/// Writes one state to `health`; true once it said the café is closed.
async fn report(health: &HealthReporter, state: &State) -> bool {
    let status = if state.is_open() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status(CAFE_SERVICE, status).await;
    health.set_service_status("", status).await;
    state.closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_is_for_good() {
        let availability = Availability::new();
        assert!(availability.check().is_ok());
        availability.no_barista("none up".into());
        assert!(matches!(availability.check(), Err(CafeError::NoBarista(why)) if why == "none up"));
        availability.barista_reachable();
        assert!(availability.check().is_ok());

        // The store and the baristas are separate reasons: one coming back
        // does not hide the other.
        availability.store_unwritable("disk full".into());
        availability.no_barista("none up".into());
        availability.barista_reachable();
        assert!(
            matches!(availability.check(), Err(CafeError::StoreUnwritable(why)) if why == "disk full")
        );
        availability.store_writable();
        assert!(availability.check().is_ok());

        assert!(availability.close());
        assert!(!availability.close(), "closing twice is a no-op");
        // A barista coming up after closing does not reopen the café.
        availability.barista_reachable();
        availability.no_barista("gone".into());
        assert!(availability.is_closed());
        assert!(matches!(availability.check(), Err(CafeError::Closing)));
    }

    #[tokio::test]
    async fn health_follows_availability_and_its_task_ends_once_closed() {
        let availability = Availability::new();
        availability.no_barista("none up".into());
        let health = HealthReporter::new();
        let service = tonic_health::server::HealthService::from_health_reporter(health.clone());
        let reporter = availability.report_health(health).await;
        let status = |name: &'static str| {
            use tonic_health::pb::{HealthCheckRequest, health_server::Health};
            let request = tonic::Request::new(HealthCheckRequest {
                service: name.into(),
            });
            let service = &service;
            async move {
                let response = service.check(request).await.unwrap();
                response.into_inner().status
            }
        };
        // Written before `report_health` returned: no race with a first check.
        assert_eq!(status(CAFE_SERVICE).await, ServingStatus::NotServing as i32);
        assert_eq!(status("").await, ServingStatus::NotServing as i32);

        availability.close();
        // The task reports the close and ends: nothing can write after it.
        reporter.await.unwrap();
        availability.barista_reachable();
        assert_eq!(status(CAFE_SERVICE).await, ServingStatus::NotServing as i32);
        assert_eq!(status("").await, ServingStatus::NotServing as i32);
    }
}
