//! Building the barista backend and running it until it is told to close.
//!
//! Like the café: [`Application::build`] binds first (so a caller learns the
//! port), [`serve`] runs until the shutdown future resolves, then closes in
//! order, all within `--shutdown-grace`:
//!
//! 1. health turns `NOT_SERVING`: the café stops sending drinks here;
//! 2. drinks still waiting for a barista get `UNAVAILABLE`, so the café
//!    retries them on another replica at once;
//! 3. drinks in hand are finished and their streams end OK;
//! 4. the transport shuts down.
//!
//! [`serve`]: Application::serve

use std::{future::Future, net::SocketAddr, time::Duration};

use cafe_core::{
    deadline::DeadlineLayer,
    propagation::GrpcServerTraceLayer,
    proto::v1::barista_server::BaristaServer,
    serving::{self, StartupError},
};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::{config::Config, service::BaristaService, station::Station};

/// A barista backend bound to its address, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    config: Config,
}

impl Application {
    /// Binds `config.listen`.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let listener = serving::bind(config.listen).await?;
        Ok(Self::with_listener(config, listener))
    }

    /// Uses a listener bound elsewhere (tests bind `127.0.0.1:0`);
    /// `config.listen` is ignored.
    pub fn with_listener(config: Config, listener: TcpListener) -> Self {
        Application { listener, config }
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then closes as described in the
    /// module docs.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), StartupError> {
        let config = self.config;
        let station = Station::new(usize::from(config.baristas));
        let brews = TaskTracker::new();
        let service = BaristaService::new(
            station.clone(),
            &config.name,
            config.time_scale,
            config.brew_mode,
            brews.clone(),
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<BaristaServer<BaristaService>>().await;
        let (reflection_v1, reflection_v1alpha) = serving::reflection("cafe.v1.Barista")?;

        let stop_transport = CancellationToken::new();
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let server = Server::builder()
            // Every Brew gets a server span, child of the café's dispatch
            // span when the request carries a `traceparent`.
            .layer(GrpcServerTraceLayer)
            // The caller's deadline bounds the brew (see `cafe_core::deadline`).
            .layer(DeadlineLayer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(BaristaServer::new(service))
            .serve_with_incoming_shutdown(incoming, stop_transport.clone().cancelled_owned());
        // The server runs in its own task so that closing can go on beside it.
        let mut server = tokio::spawn(server);

        tokio::select! {
            () = shutdown => {}
            finished = &mut server => {
                return match finished {
                    Ok(result) => result.map_err(StartupError::from),
                    Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
                };
            }
        }

        let deadline = Instant::now() + config.shutdown_grace;
        info!(grace = ?config.shutdown_grace, busy = station.busy(), "closing: finishing the drinks in hand");
        health
            .set_not_serving::<BaristaServer<BaristaService>>()
            .await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        station.close();
        brews.close();
        if tokio::time::timeout_at(deadline, brews.wait())
            .await
            .is_err()
        {
            warn!("shutdown grace over with drinks still brewing: leaving them");
        }

        stop_transport.cancel();
        let transport_deadline = deadline.max(Instant::now() + Duration::from_millis(100));
        match tokio::time::timeout_at(transport_deadline, &mut server).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join_error)) => std::panic::resume_unwind(join_error.into_panic()),
            Err(_) => {
                warn!("shutdown grace over with connections still open: closing them");
                server.abort();
            }
        }
        info!("closed");
        Ok(())
    }
}
