//! The café's own part of serving; the rest (bind, HTTP/2 settings, layers,
//! health and reflection, the bounded shutdown) is the shared scaffold in
//! [`grpc_serving`].
//!
//! [`Application::build`] binds the listener first, so a caller (a test, the
//! CLI's `demo`) can learn the port before anything is served; [`serve`]
//! opens the café's orders ([`Orders::open`]: the store `--database-url`
//! names, the book rebuilt from it, and its upkeep), then runs until the
//! shutdown future resolves and closes in order:
//!
//! 1. new orders get `UNAVAILABLE` with a hint to retry elsewhere or later;
//!    board streams end; the orders still in line are cancelled, kept for
//!    the restart or left to the other cafés, as the store decides
//!    ([`Orders::close`]);
//! 2. health turns `NOT_SERVING`;
//! 3. drinks being brewed are finished (their buzzers get `READY`);
//! 4. the transport closes: GOAWAY, the last answers sent, then the
//!    connections closed;
//!
//! all within `--shutdown-grace`. If the grace runs out first, the drinks
//! still brewing are failed, kept or handed back, again as the store decides
//! ([`Orders::grace_over`]). The store's upkeep is finished last, once the
//! transport is down, so the last changes are kept too. With
//! `--barista-endpoint` the café's health follows the remote baristas'.
//! See docs/cafe-server.md for what a rolling restart keeps.
//!
//! [`serve`]: grpc_serving::Application::serve

use std::sync::Arc;

use cafe_domain::{
    faults,
    proto::{self, v1::cafe_server::CafeServer},
};
use grpc_serving::{self as serving, Serve, Server, ServerEnv, ServerFlags, StartupError};
use tokio::time::Instant;
use tracing::info;

use crate::{
    availability::Availability,
    baristas::{self, Brewers},
    config::Config,
    metrics::{CafeCollector, PhaseTimes},
    remote::{RemoteBaristas, RemoteConfig},
    service::{CLOSING_NOTE, CafeService},
    store::{BookSettings, Orders},
};

/// What the customer of a drink still brewing when the shutdown grace runs
/// out is told.
pub const GRACE_OVER_NOTE: &str = "the café closed before this drink was finished";

/// A café bound to its address, ready to serve: the shared scaffold's
/// application, serving a café as [`Config`]'s `Serve` says.
pub type Application = serving::Application<Config>;

impl Serve for Config {
    fn flags(&self) -> &ServerFlags<impl ServerEnv> {
        &self.server
    }

    /// Opens the book and the baristas' shift, sets the café's health, and
    /// serves `cafe.v1.Cafe` until told to close; then closes as the module
    /// docs say.
    async fn serve(self, mut server: Server) -> Result<(), StartupError> {
        let availability = Arc::new(Availability::new());
        let settings = BookSettings {
            queue_capacity: self.queue_capacity as usize,
            finished_kept: self.finished_orders_kept as usize,
            lease: self.lease,
        };
        // The tasks the café cannot work without (its baristas, its
        // store's upkeep) are watched by the server: the first to die
        // closes the café, which exits non-zero to be restarted.
        let critical = server.critical();
        let (orders, upkeep) = Orders::open(&self.store_url(), settings, &availability, &critical)
            .await
            .map_err(|error| StartupError::Service(error.into()))?;
        let faults = faults::switch_on(&self.faults, self.faults_file.as_deref());
        let phases = PhaseTimes::default();
        let orders = orders.with_faults(faults).with_phases(phases.clone());
        let brewers = if self.barista_endpoints.is_empty() {
            Brewers::Embedded {
                time_scale: self.time_scale,
                brew_mode: self.brew_mode,
            }
        } else {
            // Remote baristas: the café takes orders (and says SERVING) only
            // while one of them is reachable.
            Brewers::Remote(RemoteBaristas::start(
                &availability,
                RemoteConfig {
                    endpoints: self.barista_endpoints.clone(),
                    resolve_interval: self.barista_resolve_interval,
                    wait: self.barista_wait,
                    tls: self.barista_tls()?,
                },
            ))
        };
        // With --metrics-listen: the book and the remote baristas, counted
        // at each scrape.
        let replicas_up = match &brewers {
            Brewers::Remote(remote) => Some(remote.replicas_up()),
            Brewers::Embedded { .. } => None,
        };
        server.register_collector(
            CafeCollector::new(Arc::clone(orders.book()), replicas_up).with_phases(phases),
        );
        // The café's health follows its availability from here on; nothing
        // else writes it.
        let health_reporter = availability.report_health(server.health()).await;
        let mut baristas = baristas::start_shift(&orders, &brewers, self.baristas, &critical);
        // The dispatch tasks hold their own clones; ours would keep the
        // remote baristas' background tasks alive past the shift.
        drop(brewers);

        let service = CafeService::new(orders.clone(), self.time_scale)
            .with_max_counter_wait(self.max_counter_wait);
        let cafe = CafeServer::new(service).max_decoding_message_size(server.max_message_size());
        let grace = self.server.shutdown_grace;
        let closing = async move |deadline: Instant| {
            info!(
                ?grace,
                "closing: no new orders, finishing the drinks being brewed"
            );
            let cancelled = orders.close(CLOSING_NOTE);
            // The reporter writes NOT_SERVING for the closed café and ends.
            let _ = health_reporter.await;
            if cancelled > 0 {
                info!(cancelled, "cancelled the orders still in line");
            }

            // Baristas go home once the drink in hand is done.
            let shift_over = async { while baristas.join_next().await.is_some() {} };
            if tokio::time::timeout_at(deadline, shift_over).await.is_err() {
                baristas.abort_all();
                orders.grace_over(GRACE_OVER_NOTE).await;
            }
        };
        let served = server
            .serve(cafe, proto::FILE_DESCRIPTOR_SET, closing)
            .await;
        // Only now: until the transport was down, the last changes were
        // still being made, and told.
        upkeep.finish().await;
        served
    }
}
