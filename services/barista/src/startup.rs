//! The barista backend's own part of serving; the rest (bind, HTTP/2
//! settings, layers, health and reflection, the bounded shutdown) is the
//! shared scaffold in [`grpc_serving`].
//!
//! Like the café: [`Application::build`] binds first (so a caller learns the
//! port), [`serve`] runs until the shutdown future resolves, then closes in
//! order, all within `--shutdown-grace`:
//!
//! 1. health turns `NOT_SERVING`: the café stops sending drinks here;
//! 2. new drinks get `UNAVAILABLE` (none waits here: a replica keeps no
//!    line), so the café brews them on another replica;
//! 3. drinks in hand are finished and their streams end OK;
//! 4. the transport shuts down.
//!
//! [`serve`]: grpc_serving::Application::serve

use cafe_domain::{
    faults,
    proto::{self, v1::barista_server::BaristaServer},
};
use grpc_serving::{self as serving, Serve, Server, ServerEnv, ServerFlags, StartupError};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::{config::Config, metrics::BaristaCollector, service::BaristaService, station::Station};

/// A barista backend bound to its address, ready to serve: the shared
/// scaffold's application, serving a station as [`Config`]'s `Serve` says.
pub type Application = serving::Application<Config>;

impl Serve for Config {
    fn flags(&self) -> &ServerFlags<impl ServerEnv> {
        &self.server
    }

    /// Opens the station, turns health SERVING, and serves `cafe.v1.Barista`
    /// until told to close; then closes as the module docs say.
    async fn serve(self, mut server: Server) -> Result<(), StartupError> {
        let station = Station::new(usize::from(self.baristas));
        // Every brew runs in a task tracked here, so closing can wait for
        // the drinks in hand.
        let brews = TaskTracker::new();
        let service = BaristaService::new(
            station.clone(),
            &self.name,
            self.time_scale,
            self.brew_mode,
            brews.clone(),
        )
        .with_faults(faults::switch_on(&self.faults, self.faults_file.as_deref()));
        // With --metrics-listen: the station and its brews, counted at each
        // scrape.
        server.register_collector(BaristaCollector::new(station.clone(), brews.clone()));
        let health = server.health();
        health.set_serving::<BaristaServer<BaristaService>>().await;

        let grace = self.server.shutdown_grace;
        let closing = async move |deadline: Instant| {
            info!(
                ?grace,
                busy = station.busy(),
                "closing: finishing the drinks in hand"
            );
            serving::not_serving::<BaristaServer<BaristaService>>(&health).await;
            station.close();
            brews.close();
            if tokio::time::timeout_at(deadline, brews.wait())
                .await
                .is_err()
            {
                warn!("shutdown grace over with drinks still brewing: leaving them");
            }
        };
        let barista =
            BaristaServer::new(service).max_decoding_message_size(server.max_message_size());
        server
            .serve(barista, proto::FILE_DESCRIPTOR_SET, closing)
            .await
    }
}
