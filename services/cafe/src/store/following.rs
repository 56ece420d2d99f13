//! Following a line shared with other cafés while this café serves: one
//! task takes in every café's notifications, says this café is alive every
//! [`HEARTBEAT_INTERVAL`], returns to the line the drinks of cafés silent
//! past the lease, and forgets the oldest finished orders beyond retention
//! and vacuums the table they leave (one café at a time).
//! It listens *before* it loads the line, so nothing committed in between
//! is missed (see [`super::shared`]).

use std::sync::Arc;

use grpc_serving::Critical;
use sqlx::postgres::PgListener;
use tokio::{
    task::JoinHandle,
    time::{Duration, MissedTickBehavior},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    StoreError,
    mirror::{RETRY, mirror},
    shared::{HEARTBEAT_INTERVAL, Notice, SharedLine, listen},
};
use crate::{book::OrderBook, injected_panic};

/// How often the oldest finished orders beyond retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

/// The café's part in a shared line while it runs: the task that follows
/// the other cafés' news and keeps this café's heartbeat.
#[derive(Debug)]
pub(super) struct Following {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Following {
    /// Listens, then loads the line (in that order: see [`super::shared`]),
    /// then follows it in a task of its own.
    pub(super) async fn start(
        book: &Arc<OrderBook>,
        shared: &SharedLine,
        lease: Duration,
        finished_kept: usize,
        critical: &Critical,
    ) -> Result<Self, StoreError> {
        let listener = listen(shared.pool()).await?;
        let open = join(book, shared, finished_kept).await?;
        info!(cafe = shared.cafe(), open, ?lease, "joined the shared line");
        let stop = CancellationToken::new();
        let following = follow_the_line(
            Arc::clone(book),
            shared.clone(),
            listener,
            lease,
            finished_kept,
            stop.clone(),
        );
        // Without it this café would neither hear the others nor keep its
        // lease: a critical part.
        let task = tokio::spawn(critical.watch("following the shared line", following));
        Ok(Following { stop, task })
    }

    /// Stops following (this café has nothing in hand any more) and leaves
    /// the line, so no other café waits out a lease for it.
    pub(super) async fn leave(self, shared: &SharedLine) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Err(error) = shared.leave().await {
            warn!(%error, "could not leave the shared line; the lease will tell the others");
        }
    }
}

/// Joins the shared line: takes in every open order and the newest
/// finished ones (after `listener` has started listening, so nothing
/// committed meanwhile is missed), and says this café is alive. Returns
/// how many open orders it found.
async fn join(
    book: &OrderBook,
    shared: &SharedLine,
    finished_kept: usize,
) -> Result<usize, sqlx::Error> {
    shared.heartbeat().await?;
    let finished = shared.finished_orders(finished_kept).await?;
    // Oldest first, so retention forgets the oldest.
    for row in finished.iter().rev() {
        if let Err(why) = mirror(book, row) {
            warn!(order.id = %row.order.id, why, "cannot take in an order of the shared line");
        }
    }
    let open = shared.open_orders().await?;
    for row in &open {
        if let Err(why) = mirror(book, row) {
            warn!(order.id = %row.order.id, why, "cannot take in an order of the shared line");
        }
    }
    Ok(open.len())
}

/// Reads the line again after notifications were lost: every open order,
/// and every order this book still has open that is not: it ended
/// meanwhile, and is taken in as it ended; or it ended and was pruned
/// meanwhile, and is forgotten here too ([`OrderBook::forget_gone`]).
pub(super) async fn catch_up(book: &OrderBook, shared: &SharedLine) -> Result<(), sqlx::Error> {
    let open = shared.open_orders().await?;
    for row in &open {
        let _ = mirror(book, row);
    }
    let still_open: std::collections::HashSet<&str> =
        open.iter().map(|row| row.order.id.as_str()).collect();
    let stale = book.open_ids();
    for id in stale.iter().filter(|id| !still_open.contains(id.as_str())) {
        match shared.order(id.as_str()).await? {
            Some(row) => {
                let _ = mirror(book, &row);
            }
            None => {
                if book.forget_gone(id.as_str()) {
                    info!(order.id = %id, "forgot an order the shared line pruned while its news was lost");
                }
            }
        }
    }
    Ok(())
}

/// The café's part in the shared line, until `stop`: applies every café's
/// notifications to `book`; every [`HEARTBEAT_INTERVAL`] says this café is
/// alive and returns the orders of cafés silent past `lease`; now and then
/// forgets the finished orders beyond `finished_kept`.
///
/// Started after `join`, with the listener that was listening before it
/// loaded the line. Stop it only once this café has finished or handed
/// back its drinks: until then its heartbeat keeps them its own.
async fn follow_the_line(
    book: Arc<OrderBook>,
    shared: SharedLine,
    mut listener: PgListener,
    lease: Duration,
    finished_kept: usize,
    stop: CancellationToken,
) {
    let mut beat = tokio::time::interval(HEARTBEAT_INTERVAL);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    prune.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            notification = listener.try_recv() => match notification {
                Ok(Some(notification)) => {
                    injected_panic::step("following");
                    // This café's own news it took in as it wrote it.
                    if Notice::is_from(notification.payload(), shared.cafe()) {
                        continue;
                    }
                    match Notice::decode(notification.payload()) {
                        Ok(notice) => {
                            for row in &notice.orders {
                                if let Err(why) = mirror(&book, row) {
                                    warn!(order.id = %row.order.id, why, "cannot take in an order of the shared line");
                                }
                            }
                        }
                        Err(error) => warn!(%error, "an unreadable notification on the shared line"),
                    }
                }
                Ok(None) => {
                    // The connection dropped (and is made again on the next
                    // call): what was said meanwhile is lost, so read the
                    // line again.
                    warn!("lost the shared line's notifications for a moment; reading it again");
                    if let Err(error) = catch_up(&book, &shared).await {
                        warn!(%error, "could not read the shared line");
                    }
                }
                Err(error) => {
                    warn!(%error, "the shared line's notifications failed; trying again");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
            },
            _ = beat.tick() => {
                // The heartbeat doubles as the check that the database can
                // be written: while it cannot, new orders are refused (and
                // health says NOT_SERVING), and taken again once it can.
                if let Err(error) = shared.heartbeat().await {
                    warn!(%error, "could not write this café's heartbeat");
                    book.availability().store_unwritable(error.to_string());
                    continue;
                }
                book.availability().store_writable();
                match shared.expire_leases(lease).await {
                    Ok(rows) if !rows.is_empty() => {
                        info!(orders = rows.len(), "a café stopped answering: its drinks in hand are back in line");
                        for row in &rows {
                            let _ = mirror(&book, row);
                        }
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "could not check the other cafés' leases"),
                }
            },
            _ = prune.tick() => {
                match shared.prune(finished_kept).await {
                    Ok(0) => {}
                    Ok(pruned) => debug!(pruned, "forgot the oldest finished orders"),
                    Err(error) => warn!(%error, "could not forget the oldest finished orders"),
                }
                // Whatever the server's autovacuum does (it may be off, or
                // a minute away): the dead rows this line leaves are
                // reclaimed while they are few.
                match shared.vacuum().await {
                    Ok(true) => debug!("vacuumed the shared line"),
                    Ok(false) => {}
                    Err(error) => warn!(%error, "could not vacuum the shared line"),
                }
            }
        }
    }
}
