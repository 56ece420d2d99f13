//! A book on a line shared by several cafés: the database decides, the
//! book mirrors.
//!
//! Every café's book holds every order of the shared line (so `GetOrder`,
//! `WatchOrder`, `WatchBoard` and places in line work on any café), but a
//! change that two cafés could both want is decided by one statement in
//! PostgreSQL ([`super::shared`]) first: placing (the database numbers the
//! order and finds a retry's earlier order, whichever café took it),
//! claiming (`FOR UPDATE SKIP LOCKED`: what a barista gets may not be what
//! it saw first, and that is fine), and ready, cancel, fail, note and hand
//! back (guarded updates: the loser of a race changes nothing and takes in
//! the row as it is).
//!
//! Each café writes, then takes in the row its statement returned
//! ([`mirror`], [`OrderBook::take_in`]); every other café takes in the same
//! row when its notification arrives ([`Following`]). The following task
//! also says the café is alive every second, returns to the line the
//! brewing orders of cafés silent past the lease, and forgets the oldest
//! finished orders beyond retention, in the database as in the book.

use std::{sync::Arc, time::SystemTime};

use cafe_core::order::{NewOrder, Order, OrderStatus};
use sqlx::postgres::PgListener;
use tokio::{
    task::JoinHandle,
    time::{Duration, MissedTickBehavior},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    StoreError, micros,
    rows::entry_from,
    shared::{HANDED_BACK_NOTE, HEARTBEAT_INTERVAL, NewRow, Notice, OrderRow, SharedLine, listen},
};
use crate::{
    book::{Admitted, ClaimToken, OrderBook, OrderEntry, Origin, Placed},
    error::CafeError,
};

/// How long an idle barista waits before claiming again when the line it
/// sees holds orders the database no longer has queued (other cafés took
/// them; the news is on its way).
const CLAIM_AGAIN: Duration = Duration::from_millis(50);

/// How long to wait before trying a failed database write again.
const RETRY: Duration = Duration::from_millis(500);

/// How often the oldest finished orders beyond retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

/// Places an order in the database first, then takes in the row it got.
pub(super) async fn place(
    book: &OrderBook,
    shared: &SharedLine,
    request: NewOrder,
    origin: Origin,
) -> Result<Placed, CafeError> {
    // A retry this café already knows of is answered from memory.
    let id = match book.admit(&request)? {
        Admitted::Earlier(placed) => return Ok(placed),
        Admitted::New(id) => id,
    };
    let new = NewRow {
        id: id.to_string(),
        customer: request.customer.to_string(),
        drink: request.drink.id.to_owned(),
        size: super::size_number(request.size),
        request_id: request.request_id.clone(),
        claim_token: ClaimToken::random().to_string(),
        placed_at: micros(SystemTime::now()),
    };
    let placed = shared.place(&new).await.map_err(|error| {
        warn!(%error, "the shared line could not take an order");
        CafeError::StoreUnwritable(error.to_string())
    })?;
    let entry = take_in(book, &placed.row, origin).map_err(CafeError::StoreUnwritable)?;
    book.placed(entry, &request, placed.is_new)
}

/// The order with this id: one this café has not heard of yet (placed a
/// moment ago elsewhere) is looked up in the database.
pub(super) async fn find(
    book: &OrderBook,
    shared: &SharedLine,
    id: &str,
) -> Result<Arc<OrderEntry>, CafeError> {
    let known = book.get(id);
    if known.is_ok() {
        return known;
    }
    match shared.order(id).await {
        Ok(Some(row)) => mirror(book, &row).map_err(CafeError::StoreUnwritable),
        Ok(None) => known,
        Err(error) => {
            warn!(%error, order.id = id, "could not look an order up in the shared line");
            known
        }
    }
}

/// Waits for an order in the shared line and claims it for `barista`: it
/// comes back BREWING. `None` once the café closes: a barista on a shared
/// line finishes the drink in hand and leaves the rest to the other cafés.
pub(super) async fn claim(
    book: &OrderBook,
    shared: &SharedLine,
    barista: &Arc<str>,
) -> Option<Arc<OrderEntry>> {
    loop {
        // Register for a wake-up before looking, as the book's own claim.
        let joined = book.line_joined();
        tokio::pin!(joined);
        joined.as_mut().enable();
        if book.is_closed() {
            return None;
        }
        if book.queue_len() == 0 {
            tokio::select! {
                () = joined => {}
                () = book.closed() => {}
            }
            continue;
        }
        match shared.claim(barista, SystemTime::now()).await {
            Ok(Some(row)) => match mirror(book, &row) {
                Ok(entry) => return Some(entry),
                Err(why) => {
                    // Claimed, but this café cannot brew it (a drink it
                    // does not know): say so rather than hold it.
                    warn!(order.id = %row.order.id, why, "claimed an order this café cannot read");
                    let note = format!("this order cannot be brewed: {why}");
                    if let Ok(Some(row)) = shared
                        .end(&row.order.id, OrderStatus::Failed, &note, SystemTime::now())
                        .await
                    {
                        let _ = mirror(book, &row);
                    }
                }
            },
            Ok(None) => {
                // What this café sees queued was claimed elsewhere: the
                // news is on its way.
                tokio::select! {
                    () = joined => {}
                    () = tokio::time::sleep(CLAIM_AGAIN) => {}
                    () = book.closed() => {}
                }
            }
            Err(error) => {
                warn!(%error, "could not claim from the shared line; trying again");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = book.closed() => {}
                }
            }
        }
    }
}

/// Marks an order this café brews as ready, in the database first. False
/// if it is not this café's to finish any more (cancelled meanwhile, or
/// taken back because this café was thought dead).
pub(super) async fn ready(book: &OrderBook, shared: &SharedLine, entry: &OrderEntry) -> bool {
    loop {
        match shared.ready(entry.id().as_str(), SystemTime::now()).await {
            Ok(Some(row)) => return mirror(book, &row).is_ok(),
            Ok(None) => {
                refresh(book, shared, entry.id().as_str()).await;
                return false;
            }
            Err(error) => {
                // The drink is made: keep trying (the shutdown grace
                // bounds it).
                warn!(%error, order.id = %entry.id(), "could not write READY; trying again");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// `barista` starts on an order this café claimed: written first (the
/// order must still be this café's to brew), unless it is the barista
/// that claimed it. False if it must not be brewed.
pub(super) async fn start(
    book: &OrderBook,
    shared: &SharedLine,
    entry: &OrderEntry,
    barista: Arc<str>,
) -> bool {
    let now = entry.latest();
    if now.status.is_final() {
        return false;
    }
    if now.status == OrderStatus::Brewing && now.barista.as_deref() == Some(&*barista) {
        // Claimed by this very barista: the claim wrote it.
        return true;
    }
    match shared
        .rebrew(entry.id().as_str(), &barista, SystemTime::now())
        .await
    {
        Ok(Some(row)) => mirror(book, &row).is_ok(),
        Ok(None) => {
            refresh(book, shared, entry.id().as_str()).await;
            false
        }
        Err(error) => {
            warn!(%error, order.id = %entry.id(), "could not write who brews an order");
            false
        }
    }
}

/// Fails an order with `reason`, written first; while this café closes the
/// order is handed back to the line instead (another café can still brew
/// it).
pub(super) async fn fail(
    book: &OrderBook,
    shared: &SharedLine,
    entry: &OrderEntry,
    reason: &str,
) -> bool {
    let id = entry.id().as_str();
    let written = if book.is_closed() {
        shared
            .hand_back(Some(id), HANDED_BACK_NOTE)
            .await
            .map(|rows| rows.into_iter().next())
    } else {
        shared
            .end(id, OrderStatus::Failed, reason, SystemTime::now())
            .await
    };
    match written {
        Ok(Some(row)) => mirror(book, &row).is_ok(),
        Ok(None) => false,
        Err(error) => {
            warn!(%error, order.id = id, "could not write a failed order; the lease will return it");
            false
        }
    }
}

/// Notes why an open order waits longer (its barista went away), written
/// first.
pub(super) async fn note(
    book: &OrderBook,
    shared: &SharedLine,
    entry: &OrderEntry,
    note: &str,
) -> bool {
    match shared.note(entry.id().as_str(), note).await {
        Ok(Some(row)) => mirror(book, &row).is_ok(),
        Ok(None) => false,
        Err(error) => {
            warn!(%error, order.id = %entry.id(), "could not write an order's note");
            false
        }
    }
}

/// Cancels an order for the customer holding `claim_token`, in the
/// database first (any café may cancel any order): durable when this
/// returns.
pub(super) async fn cancel(
    book: &OrderBook,
    shared: &SharedLine,
    id: &str,
    claim_token: &str,
    reason: &str,
) -> Result<Order, CafeError> {
    let entry = find(book, shared, id).await?;
    if !entry.claim_token().matches(claim_token) {
        return Err(CafeError::WrongClaimToken(entry.id().clone()));
    }
    let ended = shared
        .end(id, OrderStatus::Cancelled, reason, SystemTime::now())
        .await
        .map_err(|error| CafeError::StoreUnwritable(error.to_string()))?;
    match ended {
        Some(row) => {
            mirror(book, &row).map_err(CafeError::StoreUnwritable)?;
        }
        None => refresh(book, shared, id).await,
    }
    let order = entry.snapshot();
    match order.status {
        OrderStatus::Cancelled => Ok(order),
        status => Err(CafeError::NotCancellable {
            id: order.id,
            status,
        }),
    }
}

/// Cancels `entry` in the background for a customer who left the counter;
/// the result comes back as a notification (it is called from a drop
/// guard, which cannot wait).
pub(super) fn abandon(
    book: &OrderBook,
    shared: &SharedLine,
    entry: &OrderEntry,
    reason: &str,
) -> bool {
    // A call cut because this café is closing is not a customer leaving:
    // another café brews the order, and a retry with the same request id
    // finds it there.
    if book.is_closed() || entry.status().is_final() {
        return false;
    }
    let (shared, id, reason) = (shared.clone(), entry.id().to_string(), reason.to_owned());
    tokio::spawn(async move {
        if let Err(error) = shared
            .end(&id, OrderStatus::Cancelled, &reason, SystemTime::now())
            .await
        {
            warn!(%error, order.id = id, "could not cancel an abandoned order");
        }
    });
    true
}

/// Returns to the line the orders this café is brewing (its shutdown grace
/// ran out): the other cafés brew them. Returns how many.
pub(super) async fn hand_back_unfinished(book: &OrderBook, shared: &SharedLine) -> usize {
    match shared.hand_back(None, HANDED_BACK_NOTE).await {
        Ok(rows) => {
            for row in &rows {
                let _ = mirror(book, row);
            }
            rows.len()
        }
        Err(error) => {
            warn!(%error, "could not hand back the orders in hand; the lease will");
            0
        }
    }
}

/// Takes in the database's row for an order (see the module docs). Returns
/// the book's entry; an error if the row cannot be read (a drink this café
/// does not know).
pub fn mirror(book: &OrderBook, row: &OrderRow) -> Result<Arc<OrderEntry>, String> {
    take_in(book, row, Origin::default())
}

/// [`mirror`], with `origin` for an entry made here (the placing call's
/// trace, for this café's own orders).
fn take_in(book: &OrderBook, row: &OrderRow, origin: Origin) -> Result<Arc<OrderEntry>, String> {
    Ok(book.take_in(entry_from(&row.order, origin)?, row.version))
}

/// Reads one order again and takes it in (a guarded write lost a race:
/// the row says what happened instead).
async fn refresh(book: &OrderBook, shared: &SharedLine, id: &str) {
    match shared.order(id).await {
        Ok(Some(row)) => {
            let _ = mirror(book, &row);
        }
        Ok(None) => {}
        Err(error) => warn!(%error, order.id = id, "could not read an order back"),
    }
}

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
    ) -> Result<Self, StoreError> {
        let listener = listen(shared.pool()).await?;
        let open = join(book, shared, finished_kept).await?;
        info!(cafe = shared.cafe(), open, ?lease, "joined the shared line");
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow_the_line(
            Arc::clone(book),
            shared.clone(),
            listener,
            lease,
            finished_kept,
            stop.clone(),
        ));
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
/// and every order this book still has open that is not (it ended, or was
/// forgotten, meanwhile).
async fn catch_up(book: &OrderBook, shared: &SharedLine) -> Result<(), sqlx::Error> {
    let open = shared.open_orders().await?;
    for row in &open {
        let _ = mirror(book, row);
    }
    let still_open: std::collections::HashSet<&str> =
        open.iter().map(|row| row.order.id.as_str()).collect();
    let stale = book.open_ids();
    for id in stale.iter().filter(|id| !still_open.contains(id.as_str())) {
        if let Some(row) = shared.order(id.as_str()).await? {
            let _ = mirror(book, &row);
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
                Ok(Some(notification)) => match Notice::decode(notification.payload()) {
                    Ok(notice) => {
                        if let Err(why) = mirror(&book, &notice.order) {
                            warn!(order.id = %notice.order.order.id, why, "cannot take in an order of the shared line");
                        }
                    }
                    Err(error) => warn!(%error, "an unreadable notification on the shared line"),
                },
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
            _ = prune.tick() => match shared.prune(finished_kept).await {
                Ok(0) => {}
                Ok(pruned) => debug!(pruned, "forgot the oldest finished orders"),
                Err(error) => warn!(%error, "could not forget the oldest finished orders"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::Availability;

    /// A book on a shared line that is never reached: `mirror` is the
    /// book's own bookkeeping, no database needed.
    fn book() -> OrderBook {
        OrderBook::on_shared_line(100, Arc::new(Availability::new()), 10)
    }

    fn row(id: &str, ticket: i64, status: i32, version: i64) -> OrderRow {
        OrderRow {
            order: crate::store::StoredOrder {
                id: id.into(),
                ticket,
                customer: "ann".into(),
                drink: "latte".into(),
                size: 2,
                request_id: None,
                claim_token: ClaimToken::random().to_string(),
                placed_at: micros(SystemTime::now()),
                status,
                barista: (status == 2).then(|| "Ana".into()),
                started_at: None,
                ready_at: None,
                note: None,
                finished_at: None,
                cafe_id: None,
            },
            version,
        }
    }

    #[tokio::test]
    async fn newer_rows_are_taken_in_and_older_ones_change_nothing() {
        let book = book();
        let first = mirror(&book, &row("o5", 5, 1, 0)).unwrap();
        // Another café's order with a later ticket arrived first? No
        // matter: each takes its place by ticket.
        let later = mirror(&book, &row("o7", 7, 1, 0)).unwrap();
        assert_eq!(book.position(&first), Some(1));
        assert_eq!(book.position(&later), Some(2));
        assert_eq!(
            later.subscribe().borrow()[0].queue_position,
            2,
            "its ticket"
        );

        // Claimed somewhere: it leaves the line, and the order behind moves up.
        mirror(&book, &row("o5", 5, 2, 1)).unwrap();
        assert_eq!(first.status(), OrderStatus::Brewing);
        assert_eq!(book.position(&later), Some(1));
        // The placing's echo, late: older than what the book has.
        mirror(&book, &row("o5", 5, 1, 0)).unwrap();
        assert_eq!(first.status(), OrderStatus::Brewing);
        assert_eq!(book.queue_len(), 1);

        // Handed back: first in line again, ahead of the later ticket.
        let mut back = row("o5", 5, 1, 2);
        back.order.note = Some(HANDED_BACK_NOTE.into());
        mirror(&book, &back).unwrap();
        assert_eq!(book.position(&first), Some(1));
        assert_eq!(book.position(&later), Some(2));
        assert_eq!(first.snapshot().note.as_deref(), Some(HANDED_BACK_NOTE));

        // Ready: finished, out of the line, and its history has every step.
        mirror(&book, &row("o5", 5, 3, 4)).unwrap();
        assert_eq!(first.status(), OrderStatus::Ready);
        let statuses: Vec<OrderStatus> = first
            .subscribe()
            .borrow()
            .iter()
            .map(|change| change.status)
            .collect();
        use OrderStatus::*;
        assert_eq!(statuses, [Queued, Brewing, Queued, Ready]);
        assert_eq!(book.queue_len(), 1);
    }

    #[tokio::test]
    async fn catching_up_takes_in_what_was_missed() {
        let Some(db) = cafe_testkit::postgres::database().await else {
            return;
        };
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .unwrap();
        let here = OrderBook::on_shared_line(100, Arc::new(Availability::new()), 10);
        let there = SharedLine::new(pool, "there");
        let new = |id: &str| NewRow {
            id: id.into(),
            customer: "ann".into(),
            drink: "latte".into(),
            size: 2,
            request_id: None,
            claim_token: ClaimToken::random().to_string(),
            placed_at: micros(SystemTime::now()),
        };
        for id in ["a", "b"] {
            let row = there.place(&new(id)).await.unwrap().row;
            mirror(&here, &row).unwrap();
        }
        // Missed while the notifications were cut: "a" was cancelled, "c"
        // placed.
        there
            .end("a", OrderStatus::Cancelled, "gone", SystemTime::now())
            .await
            .unwrap()
            .unwrap();
        there.place(&new("c")).await.unwrap();

        catch_up(&here, &there).await.unwrap();
        assert_eq!(here.get("a").unwrap().status(), OrderStatus::Cancelled);
        assert_eq!(here.position(&here.get("b").unwrap()), Some(1));
        assert_eq!(here.position(&here.get("c").unwrap()), Some(2));
    }

    #[tokio::test]
    async fn a_row_this_cafe_cannot_read_is_refused() {
        let book = book();
        let mut unknown = row("o1", 1, 1, 0);
        unknown.order.drink = "pumpkin-spice".into();
        assert!(mirror(&book, &unknown).unwrap_err().contains("menu"));
        let mut bad = row("o2", 2, 9, 0);
        assert!(mirror(&book, &bad).is_err());
        bad.order.status = 1;
        bad.order.claim_token = "not a token".into();
        assert!(mirror(&book, &bad).is_err());
        assert_eq!(book.queue_len(), 0);
    }
}
