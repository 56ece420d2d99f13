//! A café's writes to the shared line, gathered into batches.
//!
//! At thousands of orders a second, one statement per placing, claim and
//! READY would cost PostgreSQL a commit and a notification each, and the
//! café a round trip each; and PostgreSQL serializes notifying commits,
//! disk flush included, so every café's writes would queue behind each
//! other's. Instead one task per café, the **counter** ([`serve`]), takes
//! every request waiting for it (new orders, READYs, idle baristas) and
//! writes them all in **one statement** ([`SharedLine::write_many`]): one
//! commit, one notification for the lot. No timer decides when: a batch is
//! whatever arrived while the previous one was being written, so an idle
//! café writes each request at once and a busy one writes bigger batches
//! (group commit, as the fast PostgreSQL job queues complete jobs).
//!
//! Nothing changes about what a write means: each caller still learns,
//! for its own order, what the database decided, once it is committed.
//! A barista waits for an order, so the counter holds the idle ones and
//! claims for as many of them as the café sees orders queued.
//!
//! A barista that stays for the next order says so with its READY
//! ([`Batches::ready`]), and is idle from that moment: its next claim goes
//! in the same statement as the READY, so a round of the line (claim, brew,
//! READY) waits for one statement, not two. The claim's answer waits for
//! the barista's next [`Batches::claim`]. An order claimed for a barista
//! that never asks again (its task failed, which closes the café) is still
//! this café's, so still handed back when the grace runs out, or returned
//! by the lease once the café has left the line.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use grpc_serving::Critical;
use tokio::{
    sync::{mpsc, oneshot},
    time::{Duration, Instant},
};
use tracing::warn;

use super::{
    micros,
    mirror::{RETRY, mirror},
    shared::{HANDED_BACK_NOTE, NewRow, OrderRow, PlacedRow, SharedLine, Writes},
};
use crate::book::{OrderBook, OrderEntry};

/// The most requests of one kind one statement carries.
const MOST_AT_ONCE: usize = 512;

/// How long the counter waits before claiming again when the line it sees
/// holds orders the database no longer has queued (other cafés took them;
/// the news is on its way).
const CLAIM_AGAIN: Duration = Duration::from_millis(50);

/// Why a batched write failed: the statement's error, shared by every
/// request it carried.
pub(super) type Failed = Arc<sqlx::Error>;

/// The way to a café's counter task. Clones share it; the task ends once
/// the last clone is gone.
#[derive(Debug, Clone)]
pub(super) struct Batches {
    requests: mpsc::UnboundedSender<Request>,
    /// The claims made with a barista's READY, each waiting for that
    /// barista's next [`Batches::claim`].
    claimed_ahead: Arc<Mutex<HashMap<Arc<str>, Claimed>>>,
}

/// Where the answer to one barista's claim arrives.
type Claimed = oneshot::Receiver<Option<Arc<OrderEntry>>>;

/// Where the answer to one write goes.
type Answer<T> = oneshot::Sender<Result<T, Failed>>;

/// What the counter is asked for, and where each answer goes.
enum Request {
    Place(NewRow, Answer<PlacedRow>),
    /// A READY, and the barista who brewed it if it stays for the next
    /// order (claimed for in the same statement).
    Ready(String, i64, Answer<Option<OrderRow>>, Option<Idle>),
    Claim(Idle),
}

/// A barista waiting for an order.
struct Idle {
    barista: Arc<str>,
    answer: oneshot::Sender<Option<Arc<OrderEntry>>>,
}

impl Batches {
    /// Starts the counter, one of the café's `critical` parts.
    pub(super) fn start(book: &Arc<OrderBook>, shared: &SharedLine, critical: &Critical) -> Self {
        let (requests, arriving) = mpsc::unbounded_channel();
        let counter = serve(Arc::clone(book), shared.clone(), arriving);
        tokio::spawn(critical.watch("writing to the shared line", counter));
        Batches {
            requests,
            claimed_ahead: Arc::default(),
        }
    }

    /// Places `new` in the next batch: the order placed, or the one the
    /// same customer placed earlier with the same request id.
    pub(super) async fn place(&self, new: NewRow) -> Result<PlacedRow, Failed> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(Request::Place(new, answer))
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Marks the order `id`, which this café brews, READY in the next
    /// batch. `None` if it is not this café's to finish any more. With
    /// `stays`, the barista who brewed it is idle from now on: the same
    /// statement claims its next order, which its next
    /// [`Batches::claim`] takes.
    pub(super) async fn ready(
        &self,
        id: &str,
        now: SystemTime,
        stays: Option<&Arc<str>>,
    ) -> Result<Option<OrderRow>, Failed> {
        let (answer, answered) = oneshot::channel();
        let idle = stays.map(|barista| {
            let (idle, claimed) = Idle::new(barista);
            self.claims_ahead().insert(Arc::clone(barista), claimed);
            idle
        });
        self.requests
            .send(Request::Ready(id.to_owned(), micros(now), answer, idle))
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Waits for an order in the shared line and claims it for `barista`
    /// (or takes the one claimed with its READY): it comes back BREWING.
    /// `None` once the café closes: a barista on a shared line finishes
    /// the drink in hand and leaves the rest to the other cafés.
    pub(super) async fn claim(&self, barista: &Arc<str>) -> Option<Arc<OrderEntry>> {
        let ahead = self.claims_ahead().remove(barista);
        let claimed = match ahead {
            Some(claimed) => claimed,
            None => {
                let (idle, claimed) = Idle::new(barista);
                self.requests.send(Request::Claim(idle)).ok()?;
                claimed
            }
        };
        claimed.await.ok().flatten()
    }

    fn claims_ahead(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Claimed>> {
        // A panic holding the lock left a map of receivers, still whole.
        self.claimed_ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Idle {
    /// `barista`, idle, and where the order claimed for it will arrive.
    fn new(barista: &Arc<str>) -> (Self, Claimed) {
        let (answer, claimed) = oneshot::channel();
        let idle = Idle {
            barista: Arc::clone(barista),
            answer,
        };
        (idle, claimed)
    }
}

/// The error a request gets when the counter is gone (the café is
/// stopping, or the task failed and the café with it).
fn stopped() -> Failed {
    Arc::new(sqlx::Error::PoolClosed)
}

/// What the counter holds between two statements.
#[derive(Default)]
struct Waiting {
    places: Vec<(NewRow, Answer<PlacedRow>)>,
    readies: Vec<(String, i64, Answer<Option<OrderRow>>)>,
    /// Idle baristas, the longest waiting first.
    idle: VecDeque<Idle>,
}

impl Waiting {
    fn take(&mut self, request: Request) {
        match request {
            Request::Place(new, answer) => self.places.push((new, answer)),
            Request::Ready(id, at, answer, stays) => {
                self.readies.push((id, at, answer));
                self.idle.extend(stays);
            }
            Request::Claim(idle) => self.idle.push_back(idle),
        }
    }
}

/// The counter: until every [`Batches`] is gone, writes what waits (see
/// the module docs). Claims as many orders as it has idle baristas and sees
/// queued; once the café closes it answers every barista `None`.
async fn serve(
    book: Arc<OrderBook>,
    shared: SharedLine,
    mut arriving: mpsc::UnboundedReceiver<Request>,
) {
    let mut waiting = Waiting::default();
    // While the line seen here runs ahead of the database's, claims wait
    // for news or this long.
    let mut claims_after: Option<Instant> = None;
    loop {
        // Register for a wake-up before looking, as the book's own claim.
        let joined = book.line_joined();
        tokio::pin!(joined);
        joined.as_mut().enable();
        while let Ok(request) = arriving.try_recv() {
            waiting.take(request);
        }
        waiting.idle.retain(|barista| !barista.answer.is_closed());
        if book.is_closed() {
            for barista in waiting.idle.drain(..) {
                let _ = barista.answer.send(None);
            }
        }
        let claimable = claims_after.is_none_or(|after| Instant::now() >= after);
        let claims = if claimable {
            waiting.idle.len().min(book.queue_len()).min(MOST_AT_ONCE)
        } else {
            0
        };
        if waiting.places.is_empty() && waiting.readies.is_empty() && claims == 0 {
            let pause = claims_after.filter(|_| !waiting.idle.is_empty());
            tokio::select! {
                arrived = arriving.recv() => match arrived {
                    Some(request) => waiting.take(request),
                    None => return,
                },
                () = joined => claims_after = None,
                () = book.closed(), if !book.is_closed() => {}
                () = sleep_until(pause) => claims_after = None,
            }
            continue;
        }
        let (placed, place_answers): (Vec<NewRow>, Vec<_>) =
            drain_some(&mut waiting.places).into_iter().unzip();
        let readies: Vec<_> = drain_some(&mut waiting.readies);
        let baristas: Vec<&str> = waiting
            .idle
            .iter()
            .take(claims)
            .map(|b| &*b.barista)
            .collect();
        let ready: Vec<&str> = readies.iter().map(|(id, _, _)| id.as_str()).collect();
        let ready_at: Vec<i64> = readies.iter().map(|(_, at, _)| *at).collect();
        let writes = Writes {
            placed: &placed,
            ready: &ready,
            ready_at: &ready_at,
            claims_for: &baristas,
        };
        let written = match shared.write_many(writes, SystemTime::now()).await {
            Ok(written) => written,
            Err(error) => {
                let error = Arc::new(error);
                for answer in place_answers {
                    let _ = answer.send(Err(Arc::clone(&error)));
                }
                for (_, _, answer) in readies {
                    let _ = answer.send(Err(Arc::clone(&error)));
                }
                if claims > 0 {
                    warn!(%error, "could not claim from the shared line; trying again");
                    claims_after = Some(Instant::now() + RETRY);
                }
                continue;
            }
        };
        // READY first: a customer waits on each.
        let mut made: HashMap<String, OrderRow> = written
            .ready
            .into_iter()
            .map(|row| (row.order.id.clone(), row))
            .collect();
        for (id, _, answer) in readies {
            let _ = answer.send(Ok(made.remove(&id)));
        }
        if claims > 0 {
            if written.claimed.len() < claims {
                // What this café sees queued was claimed elsewhere: the
                // news is on its way.
                claims_after = Some(Instant::now() + CLAIM_AGAIN);
            }
            hand_out(&book, &shared, &mut waiting.idle, written.claimed).await;
        }
        answer_placed(&shared, placed, place_answers, written.placed).await;
    }
}

/// Up to [`MOST_AT_ONCE`] of `waiting`, the oldest.
fn drain_some<T>(waiting: &mut Vec<T>) -> Vec<T> {
    let rest = waiting.split_off(waiting.len().min(MOST_AT_ONCE));
    std::mem::replace(waiting, rest)
}

/// Resolves at `until`; never without one.
async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// Gives each claimed order (in ticket order) to the idle barista it was
/// claimed for (in the same order, the longest waiting first).
async fn hand_out(
    book: &OrderBook,
    shared: &SharedLine,
    idle: &mut VecDeque<Idle>,
    claimed: Vec<OrderRow>,
) {
    let mut unserved = Vec::new();
    for row in claimed {
        let barista = idle.pop_front().expect("a barista for each claimed order");
        match take(book, shared, &row).await {
            Some(entry) => {
                if barista.answer.send(Some(entry)).is_err() {
                    give_back(book, shared, &row).await;
                }
            }
            None => unserved.push(barista),
        }
    }
    for barista in unserved.into_iter().rev() {
        idle.push_front(barista);
    }
}

/// Answers each placing with its order: the new row, or (a retry) the
/// order placed earlier with the same customer and request id, found in
/// one more statement.
async fn answer_placed(
    shared: &SharedLine,
    new: Vec<NewRow>,
    answers: Vec<Answer<PlacedRow>>,
    placed: Vec<OrderRow>,
) {
    let mut inserted: HashMap<String, OrderRow> = placed
        .into_iter()
        .map(|row| (row.order.id.clone(), row))
        .collect();
    let retries: Vec<(&str, &str)> = new
        .iter()
        .filter(|order| !inserted.contains_key(&order.id))
        .filter_map(|order| Some((order.customer.as_str(), order.request_id.as_deref()?)))
        .collect();
    let mut earlier: HashMap<(String, String), OrderRow> = HashMap::new();
    let mut failed = None;
    if !retries.is_empty() {
        match shared.earlier(&retries).await {
            Ok(rows) => {
                for row in rows {
                    if let Some(request_id) = row.order.request_id.clone() {
                        earlier.insert((row.order.customer.clone(), request_id), row);
                    }
                }
            }
            Err(error) => failed = Some(Arc::new(error)),
        }
    }
    for (order, answer) in new.iter().zip(answers) {
        let placed = if let Some(row) = inserted.remove(&order.id) {
            Ok(PlacedRow { row, is_new: true })
        } else if let Some(error) = &failed {
            Err(Arc::clone(error))
        } else {
            let key = (
                order.customer.clone(),
                order.request_id.clone().unwrap_or_default(),
            );
            match earlier.get(&key) {
                Some(row) => Ok(PlacedRow {
                    row: row.clone(),
                    is_new: false,
                }),
                // The earlier order was forgotten (deleted) between the
                // two statements: placed on its own, which tries again.
                None => shared.place(order).await.map_err(Arc::new),
            }
        };
        let _ = answer.send(placed);
    }
}

/// Takes a claimed row into the book. `None` if this café cannot brew it
/// (a drink it does not know): it fails the order, saying so, rather than
/// hold it.
async fn take(book: &OrderBook, shared: &SharedLine, row: &OrderRow) -> Option<Arc<OrderEntry>> {
    match mirror(book, row) {
        Ok(entry) => Some(entry),
        Err(why) => {
            warn!(order.id = %row.order.id, why, "claimed an order this café cannot read");
            let note = format!("this order cannot be brewed: {why}");
            let failed = shared
                .end(
                    &row.order.id,
                    cafe_domain::order::OrderStatus::Failed,
                    &note,
                    SystemTime::now(),
                )
                .await;
            if let Ok(Some(row)) = failed {
                let _ = mirror(book, &row);
            }
            None
        }
    }
}

/// Returns to the line an order claimed for a barista that stopped
/// waiting (its task ended while the café closed).
async fn give_back(book: &OrderBook, shared: &SharedLine, row: &OrderRow) {
    match shared
        .hand_back(Some(&row.order.id), HANDED_BACK_NOTE)
        .await
    {
        Ok(rows) => {
            for row in &rows {
                let _ = mirror(book, row);
            }
        }
        Err(error) => {
            warn!(%error, order.id = %row.order.id, "could not hand back a claimed order; the lease will");
        }
    }
}
