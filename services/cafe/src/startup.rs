//! Building the café and running it until it is told to close.
//!
//! [`Application::build`] binds the listener first, so a caller (a test, the
//! CLI's `demo`) can learn the port before anything is served; [`serve`]
//! then runs until the shutdown future resolves and closes in order:
//!
//! 1. new orders get `UNAVAILABLE`, orders still in line are cancelled and
//!    their customers told, board streams end;
//! 2. health turns `NOT_SERVING`;
//! 3. drinks being brewed are finished (their buzzers get `READY`);
//! 4. the transport shuts down;
//!
//! all within `--shutdown-grace`. If the grace runs out first, the drinks
//! still brewing are marked `FAILED` (their customers told) and the
//! transport is dropped. tonic's own graceful shutdown waits for every open
//! stream to end, however long that takes; the grace is what bounds it.
//!
//! With `--barista-endpoint`, the baristas are remote (see
//! [`crate::remote`]): the café's health then follows theirs, `NOT_SERVING`
//! while none is reachable.
//!
//! [`serve`]: Application::serve

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use cafe_core::{
    deadline::DeadlineLayer,
    propagation::GrpcServerTraceLayer,
    proto::v1::cafe_server::CafeServer,
    serving::{self, StartupError},
};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, server::TcpIncoming};
use tracing::{info, warn};

use crate::{
    availability::Availability,
    baristas::{self, Brewers},
    book::OrderBook,
    config::Config,
    remote::{RemoteBaristas, RemoteConfig},
    service::{CLOSING_NOTE, CafeService},
};

/// What the customer of a drink still brewing when the shutdown grace runs
/// out is told.
pub const GRACE_OVER_NOTE: &str = "the café closed before this drink was finished";

/// A café bound to its address, ready to serve.
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
        let availability = Arc::new(Availability::new());
        let book = Arc::new(OrderBook::new(
            config.queue_capacity as usize,
            Arc::clone(&availability),
        ));
        let (health, health_service) = tonic_health::server::health_reporter();
        let brewers = if config.barista_endpoints.is_empty() {
            Brewers::Embedded {
                time_scale: config.time_scale,
                brew_mode: config.brew_mode,
            }
        } else {
            // Remote baristas: the café takes orders (and says SERVING) only
            // while one of them is reachable.
            Brewers::Remote(RemoteBaristas::start(
                &availability,
                RemoteConfig {
                    endpoints: config.barista_endpoints.clone(),
                    resolve_interval: config.barista_resolve_interval,
                    wait: config.barista_wait,
                },
            ))
        };
        // The café's health follows its availability from here on; nothing
        // else writes it.
        let health_reporter = availability.report_health(health).await;
        let mut baristas = baristas::start_shift(&book, &brewers, config.baristas);
        // The dispatch tasks hold their own clones; ours would keep the
        // remote baristas' background tasks alive past the shift.
        drop(brewers);
        let (reflection_v1, reflection_v1alpha) = serving::reflection("cafe.v1.Cafe")?;

        let stop_transport = CancellationToken::new();
        // TCP_NODELAY: a buzzer's events are tiny; without it Nagle's
        // algorithm may hold one back waiting for the next.
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let server = Server::builder()
            // Every call gets a server span, child of the caller's span when
            // the request carries a `traceparent` (health and reflection
            // calls excepted), and its trace id back in `x-trace-id`.
            .layer(GrpcServerTraceLayer)
            // Callers get DEADLINE_EXCEEDED (not tonic's CANCELLED) when their
            // deadline passes, and handlers see it (see `cafe_core::deadline`).
            .layer(DeadlineLayer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(CafeServer::new(CafeService::new(
                Arc::clone(&book),
                config.time_scale,
            )))
            .serve_with_incoming_shutdown(incoming, stop_transport.clone().cancelled_owned());
        // The server runs in its own task so that closing can go on beside it.
        let mut server = tokio::spawn(server);

        tokio::select! {
            () = shutdown => {}
            // The server should only end when told to; if it fails, say why.
            finished = &mut server => {
                return match finished {
                    Ok(result) => result.map_err(StartupError::from),
                    Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
                };
            }
        }

        let deadline = Instant::now() + config.shutdown_grace;
        info!(grace = ?config.shutdown_grace, "closing: no new orders, finishing the drinks being brewed");
        let cancelled = book.close(CLOSING_NOTE);
        // The reporter writes NOT_SERVING for the closed café and ends.
        let _ = health_reporter.await;
        if cancelled > 0 {
            info!(cancelled, "cancelled the orders still in line");
        }

        // Baristas go home once the drink in hand is done.
        if tokio::time::timeout_at(deadline, async {
            while baristas.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            baristas.abort_all();
            let failed = book.fail_unfinished(GRACE_OVER_NOTE);
            warn!(
                failed,
                "shutdown grace over with drinks still brewing: failed them"
            );
        }

        stop_transport.cancel();
        // Give the transport what is left of the grace (at least a moment to
        // send the last responses), then stop waiting for it.
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
