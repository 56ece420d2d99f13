//! The café's own part of serving; the rest (bind, HTTP/2 settings, layers,
//! health and reflection, the bounded shutdown) is the shared scaffold in
//! [`grpc_serving`].
//!
//! [`Application::build`] binds the listener first, so a caller (a test, the
//! CLI's `demo`) can learn the port before anything is served; [`serve`]
//! then runs until the shutdown future resolves and closes in order:
//!
//! 1. new orders get `UNAVAILABLE` with a hint to retry on another
//!    replica, or here once the grace is over; board streams end; the
//!    orders still in line are kept or cancelled, by the store (below);
//! 2. health turns `NOT_SERVING`;
//! 3. drinks being brewed are finished (their buzzers get `READY`);
//! 4. the transport closes: GOAWAY on every connection, the last answers
//!    sent, then the connections closed;
//!
//! all within `--shutdown-grace`. If the grace runs out first, the
//! connections still open are dropped. Every call the café receives while
//! closing is answered; see [`grpc_serving::server`] for why GOAWAY
//! comes last.
//!
//! With a durable store of its own (SQLite, the binary's default) closing
//! loses nothing, as a `kill -9` would not: a rolling restart on the same
//! file brews everything. The orders in line stay `QUEUED` in the store, in
//! their order; drinks the grace cuts short stay `BREWING` there, and the
//! restart brews them again first. Their customers (buzzers, `WatchOrder`,
//! the counter) get `UNAVAILABLE` saying the café is restarting and how to
//! come back: `WatchOrder`, or the same `request_id` at the counter. With
//! the memory store (`cafe demo`) nothing would survive, so the orders in
//! line are cancelled, and drinks the grace cuts short are marked
//! `FAILED`: in both cases their customers are told.
//!
//! Before any of that, the café opens its order store (`--database-url`,
//! see [`crate::store`]), brings its schema up to date, and rebuilds the
//! book from the orders it held when it last stopped
//! ([`OrderBook::restore`]); the journal's writer then runs for the café's
//! whole life, and is flushed after the transport has shut down, so the
//! last changes (a drink made READY at the end of the grace) are kept too.
//! Nothing is appended after the transport is down: a call cut by the
//! closing cancels no order ([`OrderBook::abandon`]).
//!
//! With a PostgreSQL `--database-url` the café shares its line with every
//! café on that database ([`crate::book::mirror`]): it joins the line
//! (listening, then loading every open order), keeps a heartbeat, and on
//! closing cancels nothing: its baristas stop claiming, finish the drinks
//! in hand within the grace, and hand back to the line whatever they could
//! not finish. The other cafés brew the rest.
//!
//! With `--barista-endpoint`, the baristas are remote (see
//! [`crate::remote`]): the café's health then follows theirs, `NOT_SERVING`
//! while none is reachable.
//!
//! [`serve`]: grpc_serving::Application::serve

use std::{sync::Arc, time::Duration};

use cafe_domain::proto::{self, v1::cafe_server::CafeServer};
use grpc_serving::{self as serving, Serve, Server, ServerEnv, ServerFlags, StartupError};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    availability::Availability,
    baristas::{self, Brewers},
    book::{OrderBook, mirror},
    config::Config,
    metrics::CafeCollector,
    remote::{RemoteBaristas, RemoteConfig},
    service::{CLOSING_NOTE, CafeService},
    store::{
        self, Journal, Store,
        shared::{self as shared_line, SharedLine},
    },
};

/// How long the café waits, after its transport has shut down, for the
/// journal's last changes to be written.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

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
        let url = self.store_url();
        let finished_kept = self.finished_orders_kept as usize;
        let (book, following, journal, writer) = if is_postgres(&url) {
            // A line shared with every café on this database: the database
            // is written first, so there is no journal (see `book::mirror`).
            let shared = SharedLine::open(&url)
                .await
                .map_err(|error| StartupError::Service(error.into()))?;
            let book = Arc::new(OrderBook::on_shared_line(
                self.queue_capacity as usize,
                Arc::clone(&availability),
                finished_kept,
                shared,
            ));
            let following = Following::start(&book, self.lease, finished_kept).await?;
            (book, Some(following), None, None)
        } else {
            let store = Store::open(&url)
                .await
                .map_err(|error| StartupError::Service(error.into()))?;
            let recovered = store
                .recover()
                .await
                .map_err(|error| StartupError::Service(error.into()))?;
            // No journal for the memory store: nothing is written, nothing
            // waits.
            let journal = store.is_durable().then(|| Arc::new(Journal::new()));
            let book = Arc::new(OrderBook::with_journal(
                self.queue_capacity as usize,
                Arc::clone(&availability),
                finished_kept,
                journal.clone(),
            ));
            let restored = book.restore(recovered);
            info!(store = %store.describe(), queued = restored.queued, rebrewed = restored.rebrewed,
                  finished = restored.finished, unreadable = restored.unreadable, "order store open");
            // The writer owns the store from here; it ends once the journal
            // is closed and written out (below, after the transport is down).
            let writer = journal.as_ref().map(|journal| {
                tokio::spawn(store::journal::write(
                    Arc::clone(journal),
                    store,
                    Arc::clone(&availability),
                ))
            });
            (book, None, journal, writer)
        };
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
        server.register_collector(CafeCollector::new(Arc::clone(&book), replicas_up));
        // The café's health follows its availability from here on; nothing
        // else writes it.
        let health_reporter = availability.report_health(server.health()).await;
        let mut baristas = baristas::start_shift(&book, &brewers, self.baristas);
        // The dispatch tasks hold their own clones; ours would keep the
        // remote baristas' background tasks alive past the shift.
        drop(brewers);

        let service = CafeService::new(Arc::clone(&book), self.time_scale)
            .with_max_counter_wait(self.max_counter_wait);
        let cafe = CafeServer::new(service).max_decoding_message_size(server.max_message_size());
        let grace = self.server.shutdown_grace;
        let on_shared_line = following.is_some();
        let keeps_line = journal.is_some();
        let closing_book = Arc::clone(&book);
        let closing = async move |deadline: Instant| {
            let book = closing_book;
            info!(
                ?grace,
                "closing: no new orders, finishing the drinks being brewed"
            );
            let cancelled = book.close(CLOSING_NOTE);
            // The reporter writes NOT_SERVING for the closed café and ends.
            let _ = health_reporter.await;
            if cancelled > 0 {
                info!(cancelled, "cancelled the orders still in line");
            }

            // Baristas go home once the drink in hand is done.
            let shift_over = async { while baristas.join_next().await.is_some() {} };
            if tokio::time::timeout_at(deadline, shift_over).await.is_err() {
                baristas.abort_all();
                if on_shared_line {
                    // Not failed: the other cafés brew them.
                    let handed_back = book.hand_back_unfinished().await;
                    warn!(
                        handed_back,
                        "shutdown grace over with drinks still brewing: handed them back to the shared line"
                    );
                } else if keeps_line {
                    // Not failed: left BREWING in the store, so the restart
                    // brews them again first.
                    let kept = book.keep_unfinished();
                    warn!(
                        kept,
                        "shutdown grace over with drinks still brewing: kept them for the restart"
                    );
                } else {
                    let failed = book.fail_unfinished(GRACE_OVER_NOTE);
                    warn!(
                        failed,
                        "shutdown grace over with drinks still brewing: failed them"
                    );
                }
            }
        };
        let served = server
            .serve(cafe, proto::FILE_DESCRIPTOR_SET, closing)
            .await;
        // Only now: until the transport was down, open buzzers and watches
        // here were still told of their orders' progress at the other cafés.
        if let Some(following) = following {
            following.leave(&book).await;
        }
        if let (Some(journal), Some(writer)) = (journal, writer) {
            journal.close();
            if tokio::time::timeout(FINAL_FLUSH, writer).await.is_err() {
                warn!(
                    ?FINAL_FLUSH,
                    "the order store's last changes could not be written in time"
                );
            }
        }
        served
    }
}

/// Whether `url` names a PostgreSQL database.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The café's part in a shared line while it runs: the task that follows
/// the other cafés' news and keeps this café's heartbeat.
struct Following {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Following {
    /// Listens, then loads the line (in that order: see
    /// [`crate::store::shared`]), then follows it in a task of its own.
    async fn start(
        book: &Arc<OrderBook>,
        lease: Duration,
        finished_kept: usize,
    ) -> Result<Self, StartupError> {
        let line = book.shared_line().expect("a book on a shared line");
        let listener = shared_line::listen(line.pool())
            .await
            .map_err(|error| StartupError::Service(error.into()))?;
        let open = mirror::join(book, finished_kept)
            .await
            .map_err(|error| StartupError::Service(error.into()))?;
        info!(cafe = line.cafe(), open, ?lease, "joined the shared line");
        let stop = CancellationToken::new();
        let task = tokio::spawn(mirror::follow_the_line(
            Arc::clone(book),
            listener,
            lease,
            finished_kept,
            stop.clone(),
        ));
        Ok(Following { stop, task })
    }

    /// Stops following (this café has nothing in hand any more) and leaves
    /// the line, so no other café waits out a lease for it.
    async fn leave(self, book: &OrderBook) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Some(line) = book.shared_line()
            && let Err(error) = line.leave().await
        {
            warn!(%error, "could not leave the shared line; the lease will tell the others");
        }
    }
}
