//! A book on a line shared by several cafés: the database decides, the
//! book mirrors.
//!
//! With `--database-url postgres://…` every café's book holds every order
//! of the shared line (so `GetOrder`, `WatchOrder`, `WatchBoard` and places
//! in line work on any café), but a change that two cafés could both want
//! is decided by one statement in PostgreSQL ([`crate::store::shared`]):
//!
//! - **placing** ([`OrderBook::place_order`]): the database numbers the
//!   order (the shared ticket) and finds a retry's earlier order, whichever
//!   café took it; then the order joins this book at its ticket;
//! - **claiming** ([`OrderBook::claim_next`]): an idle barista waits for the
//!   mirrored line to hold something, then claims the first queued order in
//!   the database (`FOR UPDATE SKIP LOCKED`); what it gets may not be what
//!   it saw first (another café's barista was quicker), and that is fine;
//! - **ready, cancel, fail, hand back**: guarded updates; the loser of a
//!   race changes nothing and takes in the row as it is. A remote barista
//!   (`--barista-endpoint`) reports through the same calls
//!   ([`OrderBook::brewing_by`], [`OrderBook::ready_order`],
//!   [`OrderBook::fail_order`], [`OrderBook::note_order`]).
//!
//! Each café writes, then applies the row its statement returned
//! ([`OrderBook::mirror`]); every other café applies the same row when its
//! notification arrives ([`follow_the_line`]). A row is applied only if its
//! version is newer than the entry's, so an echo, or news that arrives
//! after a newer change was already taken in, changes nothing. Applying a
//! row is the book's ordinary bookkeeping: the entry's history (its
//! followers are woken), the line (an order joins at its ticket, perhaps
//! ahead of orders already there: `Line::insert`), the board.
//!
//! A café's own background work ([`follow_the_line`]) also says it is
//! alive every second, returns to the line the brewing orders of cafés
//! silent past the lease, and forgets the oldest finished orders beyond
//! retention, in the database as in the book.

use std::{sync::Arc, time::SystemTime};

use cafe_domain::{
    convert::{size_from_wire, status_from_wire},
    menu::{self, Size},
    order::{Customer, NewOrder, Order, OrderId, OrderStatus},
};
use sqlx::postgres::PgListener;
use tokio::time::{Duration, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    BookState, ClaimToken, OrderBook, Placed,
    entry::{Change, OrderEntry, Origin},
    line::Ticket,
    placed_earlier,
};
use crate::{
    error::CafeError,
    store::{
        Seq,
        shared::{
            HANDED_BACK_NOTE, HEARTBEAT_INTERVAL, NewRow, Notice, OrderRow, SharedLine, micros,
        },
    },
};

/// How long an idle barista waits before claiming again when the line it
/// sees holds orders the database no longer has queued (other cafés took
/// them; the news is on its way).
const CLAIM_AGAIN: Duration = Duration::from_millis(50);

/// How long to wait before trying a failed database write again.
const RETRY: Duration = Duration::from_millis(500);

/// How often the oldest finished orders beyond retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

impl OrderBook {
    /// The shared line this book mirrors, if it is on one.
    pub fn shared_line(&self) -> Option<&SharedLine> {
        self.shared.as_ref()
    }

    /// Places an order: on a shared line, in the database first (see the
    /// module docs); otherwise [`OrderBook::place`].
    pub async fn place_order(
        &self,
        request: NewOrder,
        origin: Origin,
    ) -> Result<Placed, CafeError> {
        let Some(shared) = &self.shared else {
            return self.place(request, origin);
        };
        let id = {
            let book = self.lock();
            // A retry this café already knows of is answered from memory.
            if let Some(request_id) = &request.request_id
                && let Some(entry) = book.registry.placed_with(&request.customer, request_id)
            {
                return placed_earlier(&book, entry, &request);
            }
            self.availability.check()?;
            if book.line.len() >= self.queue_capacity {
                return Err(CafeError::QueueFull {
                    capacity: self.queue_capacity,
                });
            }
            book.registry.fresh_id()
        };
        let claim = ClaimToken::random();
        let new = NewRow {
            id: id.to_string(),
            customer: request.customer.to_string(),
            drink: request.drink.id.to_owned(),
            size: cafe_domain::proto::v1::Size::from(request.size) as i32,
            request_id: request.request_id.clone(),
            claim_token: claim.to_string(),
            placed_at: micros(SystemTime::now()),
        };
        let placed = shared.place(&new).await.map_err(|error| {
            warn!(%error, "the shared line could not take an order");
            CafeError::StoreUnwritable(error.to_string())
        })?;

        let mut book = self.lock();
        let entry = self
            .mirror_locked(&mut book, &placed.row, origin)
            .map_err(CafeError::StoreUnwritable)?;
        if !placed.is_new {
            return placed_earlier(&book, &entry, &request);
        }
        let queue_position = book.line.position(entry.ticket()).unwrap_or(0);
        Ok(Placed {
            entry,
            is_new: true,
            queue_position,
        })
    }

    /// The order with this id: on a shared line, one this café has not
    /// heard of yet (placed a moment ago elsewhere) is looked up in the
    /// database.
    pub async fn find(&self, id: &str) -> Result<Arc<OrderEntry>, CafeError> {
        let known = self.get(id);
        let Some(shared) = &self.shared else {
            return known;
        };
        if known.is_ok() {
            return known;
        }
        match shared.order(id).await {
            Ok(Some(row)) => self.mirror(&row).map_err(CafeError::StoreUnwritable),
            Ok(None) => known,
            Err(error) => {
                warn!(%error, order.id = id, "could not look an order up in the shared line");
                known
            }
        }
    }

    /// Waits for an order in the shared line and claims it for `barista`:
    /// it comes back BREWING. `None` once the café closes: a barista on a
    /// shared line finishes the drink in hand and leaves the rest to the
    /// other cafés.
    pub async fn claim_next(&self, barista: &Arc<str>) -> Option<Arc<OrderEntry>> {
        let shared = self.shared.as_ref()?;
        loop {
            // As in `next_in_line`: register for a wake-up before looking.
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.availability.is_closed() {
                return None;
            }
            if self.queue_len() == 0 {
                tokio::select! {
                    () = notified => {}
                    () = self.closed() => {}
                }
                continue;
            }
            match shared.claim(barista, SystemTime::now()).await {
                Ok(Some(row)) => match self.mirror(&row) {
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
                            let _ = self.mirror(&row);
                        }
                    }
                },
                Ok(None) => {
                    // What this café sees queued was claimed elsewhere: the
                    // news is on its way.
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(CLAIM_AGAIN) => {}
                        () = self.closed() => {}
                    }
                }
                Err(error) => {
                    warn!(%error, "could not claim from the shared line; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        () = self.closed() => {}
                    }
                }
            }
        }
    }

    /// Marks an order this café brews as ready, in the database first.
    /// False if it is not this café's to finish any more (cancelled
    /// meanwhile, or taken back because this café was thought dead).
    pub async fn ready_order(&self, entry: &OrderEntry) -> bool {
        let Some(shared) = &self.shared else {
            return self.mark_ready(entry);
        };
        loop {
            match shared.ready(entry.id().as_str(), SystemTime::now()).await {
                Ok(Some(row)) => return self.mirror(&row).is_ok(),
                Ok(None) => {
                    self.refresh(shared, entry.id().as_str()).await;
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

    /// A remote barista started on an order this café claimed: on a shared
    /// line, written first (the order must still be this café's to brew);
    /// otherwise [`OrderBook::start_brewing`]. False if it must not be
    /// brewed.
    pub async fn brewing_by(&self, entry: &OrderEntry, barista: Arc<str>) -> bool {
        let Some(shared) = &self.shared else {
            return self.start_brewing(entry, barista);
        };
        match shared
            .rebrew(entry.id().as_str(), &barista, SystemTime::now())
            .await
        {
            Ok(Some(row)) => self.mirror(&row).is_ok(),
            Ok(None) => {
                self.refresh(shared, entry.id().as_str()).await;
                false
            }
            Err(error) => {
                warn!(%error, order.id = %entry.id(), "could not write who brews an order");
                false
            }
        }
    }

    /// Fails an order with `reason`: on a shared line, written first, and
    /// while this café closes the order is handed back to the line instead
    /// (another café can still brew it); otherwise [`OrderBook::mark_failed`].
    pub async fn fail_order(&self, entry: &OrderEntry, reason: &str) -> bool {
        let Some(shared) = &self.shared else {
            return self.mark_failed(entry, reason);
        };
        let id = entry.id().as_str();
        let written = if self.availability.is_closed() {
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
            Ok(Some(row)) => self.mirror(&row).is_ok(),
            Ok(None) => false,
            Err(error) => {
                warn!(%error, order.id = id, "could not write a failed order; the lease will return it");
                false
            }
        }
    }

    /// Notes why an open order waits longer (its barista went away): on a
    /// shared line, written first; otherwise [`OrderBook::barista_left`].
    pub async fn note_order(&self, entry: &OrderEntry, note: &str) -> bool {
        let Some(shared) = &self.shared else {
            return self.barista_left(entry, note);
        };
        match shared.note(entry.id().as_str(), note).await {
            Ok(Some(row)) => self.mirror(&row).is_ok(),
            Ok(None) => false,
            Err(error) => {
                warn!(%error, order.id = %entry.id(), "could not write an order's note");
                false
            }
        }
    }

    /// Cancels an order for the customer holding `claim_token`: on a
    /// shared line, in the database first (any café may cancel any order;
    /// the cancel is durable when this returns, so its number is 0).
    /// Otherwise [`OrderBook::cancel`].
    pub async fn cancel_order(
        &self,
        id: &str,
        claim_token: &str,
        reason: &str,
    ) -> Result<(Order, Seq), CafeError> {
        let Some(shared) = &self.shared else {
            return self.cancel(id, claim_token, reason);
        };
        let entry = self.find(id).await?;
        if !entry.claim_token().matches(claim_token) {
            return Err(CafeError::WrongClaimToken(entry.id().clone()));
        }
        let ended = shared
            .end(id, OrderStatus::Cancelled, reason, SystemTime::now())
            .await
            .map_err(|error| CafeError::StoreUnwritable(error.to_string()))?;
        match ended {
            Some(row) => {
                self.mirror(&row).map_err(CafeError::StoreUnwritable)?;
            }
            None => self.refresh(shared, id).await,
        }
        let order = entry.snapshot();
        match order.status {
            OrderStatus::Cancelled => Ok((order, 0)),
            status => Err(CafeError::NotCancellable {
                id: order.id,
                status,
            }),
        }
    }

    /// On a shared line, returns to the line the orders this café is
    /// brewing (its shutdown grace ran out): the other cafés brew them.
    /// Returns how many.
    pub async fn hand_back_unfinished(&self) -> usize {
        let Some(shared) = &self.shared else {
            return 0;
        };
        match shared.hand_back(None, HANDED_BACK_NOTE).await {
            Ok(rows) => {
                for row in &rows {
                    let _ = self.mirror(row);
                }
                rows.len()
            }
            Err(error) => {
                warn!(%error, "could not hand back the orders in hand; the lease will");
                0
            }
        }
    }

    /// Takes in the database's row for an order (see the module docs):
    /// creates the entry if the book has none, or applies the row if it is
    /// newer than what the entry has. Returns the entry; an error if the
    /// row cannot be read (a drink this café does not know).
    pub fn mirror(&self, row: &OrderRow) -> Result<Arc<OrderEntry>, String> {
        let mut book = self.lock();
        self.mirror_locked(&mut book, row, Origin::default())
    }

    /// [`OrderBook::mirror`] under the lock; `origin` goes with an entry
    /// made here (the placing call's trace, for this café's own orders).
    fn mirror_locked(
        &self,
        book: &mut BookState,
        row: &OrderRow,
        origin: Origin,
    ) -> Result<Arc<OrderEntry>, String> {
        let status = status_from_wire(row.order.status)
            .ok_or_else(|| format!("status {} is no status", row.order.status))?;
        let ticket =
            Ticket::try_from(row.order.ticket).map_err(|_| "a negative ticket".to_owned())?;
        let known = book.registry.get(row.order.id.as_str()).cloned();
        let entry = match known {
            Some(entry) if row.version <= entry.version() => return Ok(entry),
            Some(entry) => entry,
            None => {
                let entry = Arc::new(entry_from(row, status, ticket, origin)?);
                entry.set_version(row.version);
                if status == OrderStatus::Queued
                    && book.line.insert(ticket, Arc::clone(&entry)).is_ok()
                {
                    entry.joined_at(book.line.position(ticket).unwrap_or(0));
                    self.joined_line(book);
                }
                book.registry.insert(Arc::clone(&entry));
                if status.is_final() {
                    self.finished(book, &entry);
                }
                self.tell_board(&entry, || entry.latest());
                return Ok(entry);
            }
        };
        entry.set_version(row.version);
        // The line first, so the change records the place it has now.
        let in_line = book.line.position(ticket).is_some();
        if status == OrderStatus::Queued && !in_line {
            if book.line.insert(ticket, Arc::clone(&entry)).is_ok() {
                self.joined_line(book);
            }
        } else if status != OrderStatus::Queued && in_line && book.line.remove(ticket).is_some() {
            self.line_moves.moved(book.line.len());
        }
        let was_final = entry.status().is_final();
        let (barista, note) = (row.order.barista.as_deref(), row.order.note.as_deref());
        self.change(book, &entry, |order| {
            order.status = status;
            order.barista = barista.map(Arc::from);
            order.started_at = row.order.started_at.map(from_micros);
            order.ready_at = row.order.ready_at.map(from_micros);
            order.note = note.map(Arc::from);
            true
        });
        if status.is_final() && !was_final {
            self.finished(book, &entry);
        }
        Ok(entry)
    }

    /// An order joined the mirrored line: wake one idle barista, and tell
    /// the buzzers (it may have joined ahead of them).
    fn joined_line(&self, book: &BookState) {
        self.work.notify_one();
        self.line_moves.moved(book.line.len());
    }

    /// Reads one order again and takes it in (a guarded write lost a race:
    /// the row says what happened instead).
    async fn refresh(&self, shared: &SharedLine, id: &str) {
        match shared.order(id).await {
            Ok(Some(row)) => {
                let _ = self.mirror(&row);
            }
            Ok(None) => {}
            Err(error) => warn!(%error, order.id = id, "could not read an order back"),
        }
    }
}

/// Cancels `entry` in the background for a customer who left the counter
/// (see [`OrderBook::abandon`]); the result comes back as a notification.
pub(super) fn abandon(
    shared: &SharedLine,
    closing: bool,
    entry: &OrderEntry,
    reason: &str,
) -> bool {
    // A call cut because this café is closing is not a customer leaving:
    // another café brews the order, and a retry with the same request id
    // finds it there.
    if closing || entry.status().is_final() {
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

/// A row as a book entry, `status` and `ticket` already read.
fn entry_from(
    row: &OrderRow,
    status: OrderStatus,
    ticket: Ticket,
    origin: Origin,
) -> Result<OrderEntry, String> {
    let request = NewOrder {
        customer: Customer::parse(&row.order.customer).map_err(|bad| bad.to_string())?,
        drink: menu::find(&row.order.drink)
            .ok_or_else(|| format!("{:?} is not on this café's menu", row.order.drink))?,
        size: size_from_wire(row.order.size)
            .ok()
            .map(|size| size.unwrap_or(Size::Medium))
            .ok_or_else(|| format!("size {} is no size", row.order.size))?,
        request_id: row.order.request_id.clone(),
    };
    let claim = ClaimToken::parse(&row.order.claim_token)
        .ok_or_else(|| "the claim token is unreadable".to_owned())?;
    let now = Change {
        status,
        barista: row.order.barista.as_deref().map(Arc::from),
        started_at: row.order.started_at.map(from_micros),
        ready_at: row.order.ready_at.map(from_micros),
        note: row.order.note.as_deref().map(Arc::from),
        // Set as the entry joins the line ([`OrderEntry::joined_at`]).
        queue_position: 0,
        // In the database before it is taken in: nothing to wait for.
        seq: 0,
    };
    Ok(OrderEntry::mirrored(
        OrderId::from(row.order.id.as_str()),
        ticket,
        request,
        from_micros(row.order.placed_at),
        claim,
        now,
        origin,
    ))
}

fn from_micros(micros: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// Joins the shared line: takes in every open order and the newest
/// finished ones (after `listener` has started listening, so nothing
/// committed meanwhile is missed), and says this café is alive. Returns
/// how many open orders it found.
pub async fn join(book: &OrderBook, finished_kept: usize) -> Result<usize, sqlx::Error> {
    let shared = book.shared.as_ref().expect("a book on a shared line");
    shared.heartbeat().await?;
    let finished = shared.finished_orders(finished_kept).await?;
    // Oldest first, so retention forgets the oldest.
    for row in finished.iter().rev() {
        if let Err(why) = book.mirror(row) {
            warn!(order.id = %row.order.id, why, "cannot take in an order of the shared line");
        }
    }
    let open = shared.open_orders().await?;
    for row in &open {
        if let Err(why) = book.mirror(row) {
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
        let _ = book.mirror(row);
    }
    let still_open: std::collections::HashSet<&str> =
        open.iter().map(|row| row.order.id.as_str()).collect();
    let stale: Vec<OrderId> = book
        .lock()
        .registry
        .iter()
        .filter(|entry| !entry.status().is_final() && !still_open.contains(entry.id().as_str()))
        .map(|entry| entry.id().clone())
        .collect();
    for id in stale {
        if let Some(row) = shared.order(id.as_str()).await? {
            let _ = book.mirror(&row);
        }
    }
    Ok(())
}

/// The café's part in the shared line, until `stop`: applies every café's
/// notifications to `book`; every [`HEARTBEAT_INTERVAL`] says this café is
/// alive and returns the orders of cafés silent past `lease`; now and then
/// forgets the finished orders beyond `finished_kept`.
///
/// Started after [`join`], with the listener that was listening before it
/// loaded the line. Stop it only once this café has finished or handed
/// back its drinks: until then its heartbeat keeps them its own.
pub async fn follow_the_line(
    book: Arc<OrderBook>,
    mut listener: PgListener,
    lease: Duration,
    finished_kept: usize,
    stop: CancellationToken,
) {
    let shared = book.shared.clone().expect("a book on a shared line");
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
                        if let Err(why) = book.mirror(&notice.order) {
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
                    book.availability.store_unwritable(error.to_string());
                    continue;
                }
                book.availability.store_writable();
                match shared.expire_leases(lease).await {
                    Ok(rows) if !rows.is_empty() => {
                        info!(orders = rows.len(), "a café stopped answering: its drinks in hand are back in line");
                        for row in &rows {
                            let _ = book.mirror(row);
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
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        OrderBook::on_shared_line(
            100,
            Arc::new(Availability::new()),
            10,
            SharedLine::new(pool, "here"),
        )
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
        let first = book.mirror(&row("o5", 5, 1, 0)).unwrap();
        // Another café's order with a later ticket arrived first? No
        // matter: each takes its place by ticket.
        let later = book.mirror(&row("o7", 7, 1, 0)).unwrap();
        assert_eq!(book.position(&first), Some(1));
        assert_eq!(book.position(&later), Some(2));
        assert_eq!(
            later.subscribe().borrow()[0].queue_position,
            2,
            "its ticket"
        );

        // Claimed somewhere: it leaves the line, and the order behind moves up.
        book.mirror(&row("o5", 5, 2, 1)).unwrap();
        assert_eq!(first.status(), OrderStatus::Brewing);
        assert_eq!(book.position(&later), Some(1));
        // The placing's echo, late: older than what the book has.
        book.mirror(&row("o5", 5, 1, 0)).unwrap();
        assert_eq!(first.status(), OrderStatus::Brewing);
        assert_eq!(book.queue_len(), 1);

        // Handed back: first in line again, ahead of the later ticket.
        let mut back = row("o5", 5, 1, 2);
        back.order.note = Some(HANDED_BACK_NOTE.into());
        book.mirror(&back).unwrap();
        assert_eq!(book.position(&first), Some(1));
        assert_eq!(book.position(&later), Some(2));
        assert_eq!(first.snapshot().note.as_deref(), Some(HANDED_BACK_NOTE));

        // Ready: finished, out of the line, and its history has every step.
        book.mirror(&row("o5", 5, 3, 4)).unwrap();
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
        let here = OrderBook::on_shared_line(
            100,
            Arc::new(Availability::new()),
            10,
            SharedLine::new(pool.clone(), "here"),
        );
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
            here.mirror(&row).unwrap();
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
        assert!(book.mirror(&unknown).unwrap_err().contains("menu"));
        let mut bad = row("o2", 2, 9, 0);
        assert!(book.mirror(&bad).is_err());
        bad.order.status = 1;
        bad.order.claim_token = "not a token".into();
        assert!(book.mirror(&bad).is_err());
        assert_eq!(book.queue_len(), 0);
    }
}
