//! A café's writes to the shared line, gathered into batches.
//!
//! At thousands of orders a second, one statement per placing, claim and
//! READY would cost PostgreSQL a commit and a notification each, and the
//! café a round trip each. Instead each kind of write has one task that
//! takes every request waiting for it and writes them in **one statement**
//! ([`SharedLine::place_many`], [`SharedLine::claim_many`],
//! [`SharedLine::ready_many`]): one commit, one notification for the lot.
//! No timer decides when: a batch is whatever arrived while the previous
//! one was being written, so an idle café writes each request at once and
//! a busy one writes bigger batches (group commit, as the fast PostgreSQL
//! job queues complete jobs).
//!
//! Nothing changes about what a write means: each caller still learns,
//! for its own order, what the database decided, once it is committed.
//!
//! Claims are different in kind: a barista waits for an order, so the
//! claim task ([`serve_claims`]) holds the idle baristas and claims for as
//! many of them as the café sees orders queued, each order written to its
//! barista by name in the same statement.

use std::{collections::HashMap, collections::VecDeque, future::Future, sync::Arc, time::SystemTime};

use grpc_serving::Critical;
use tokio::{
    sync::{mpsc, oneshot},
    time::Duration,
};
use tracing::warn;

use super::{
    micros,
    mirror::{RETRY, mirror},
    shared::{HANDED_BACK_NOTE, NewRow, OrderRow, PlacedRow, SharedLine},
};
use crate::book::{OrderBook, OrderEntry};

/// The most requests one statement carries.
const MOST_AT_ONCE: usize = 512;

/// How long the claim task waits before claiming again when the line it
/// sees holds orders the database no longer has queued (other cafés took
/// them; the news is on its way).
const CLAIM_AGAIN: Duration = Duration::from_millis(50);

/// Why a batched write failed: the statement's error, shared by every
/// request it carried.
pub(super) type Failed = Arc<sqlx::Error>;

/// The batching tasks of a café on a shared line. Clones share them; the
/// tasks end once the last clone is gone.
#[derive(Debug, Clone)]
pub(super) struct Batches {
    place: Batcher<NewRow, PlacedRow>,
    ready: Batcher<(String, i64), Option<OrderRow>>,
    claims: mpsc::UnboundedSender<Idle>,
}

impl Batches {
    /// Starts the tasks, each one of the café's `critical` parts.
    pub(super) fn start(book: &Arc<OrderBook>, shared: &SharedLine, critical: &Critical) -> Self {
        let place = {
            let shared = shared.clone();
            Batcher::start(critical, "placing on the shared line", move |new| {
                let shared = shared.clone();
                async move { place_batch(&shared, new).await }
            })
        };
        let ready = {
            let shared = shared.clone();
            Batcher::start(critical, "writing READY to the shared line", move |done| {
                let shared = shared.clone();
                async move { ready_batch(&shared, done).await }
            })
        };
        let (claims, idle) = mpsc::unbounded_channel();
        let claiming = serve_claims(Arc::clone(book), shared.clone(), idle);
        tokio::spawn(critical.watch("claiming from the shared line", claiming));
        Batches {
            place,
            ready,
            claims,
        }
    }

    /// Places `new` in the next batch: the order placed, or the one the
    /// same customer placed earlier with the same request id.
    pub(super) async fn place(&self, new: NewRow) -> Result<PlacedRow, Failed> {
        self.place.call(new).await
    }

    /// Marks the order `id`, which this café brews, READY in the next
    /// batch. `None` if it is not this café's to finish any more.
    pub(super) async fn ready(&self, id: &str, now: SystemTime) -> Result<Option<OrderRow>, Failed> {
        self.ready.call((id.to_owned(), micros(now))).await
    }

    /// Waits for an order in the shared line and claims it for `barista`:
    /// it comes back BREWING. `None` once the café closes: a barista on a
    /// shared line finishes the drink in hand and leaves the rest to the
    /// other cafés.
    pub(super) async fn claim(&self, barista: &Arc<str>) -> Option<Arc<OrderEntry>> {
        let (answer, answered) = oneshot::channel();
        let idle = Idle {
            barista: Arc::clone(barista),
            answer,
        };
        self.claims.send(idle).ok()?;
        answered.await.ok().flatten()
    }
}

/// One request waiting for its batch, and where its answer goes.
struct Job<Q, A> {
    request: Q,
    answer: oneshot::Sender<Result<A, Failed>>,
}

/// A task writing requests of one kind in batches.
struct Batcher<Q, A> {
    jobs: mpsc::UnboundedSender<Job<Q, A>>,
}

impl<Q, A> Clone for Batcher<Q, A> {
    fn clone(&self) -> Self {
        Batcher {
            jobs: self.jobs.clone(),
        }
    }
}

impl<Q, A> std::fmt::Debug for Batcher<Q, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Starts the task: `write` takes a batch of requests and answers each,
    /// in the same order, in one statement.
    fn start<W, F>(critical: &Critical, part: &'static str, mut write: W) -> Self
    where
        W: FnMut(Vec<Q>) -> F + Send + 'static,
        F: Future<Output = Result<Vec<A>, sqlx::Error>> + Send,
    {
        let (jobs, mut waiting) = mpsc::unbounded_channel::<Job<Q, A>>();
        let task = async move {
            let mut batch = Vec::with_capacity(MOST_AT_ONCE);
            while waiting.recv_many(&mut batch, MOST_AT_ONCE).await > 0 {
                let (requests, answers): (Vec<_>, Vec<_>) =
                    batch.drain(..).map(|job| (job.request, job.answer)).unzip();
                match write(requests).await {
                    Ok(results) => {
                        for (answer, result) in answers.into_iter().zip(results) {
                            let _ = answer.send(Ok(result));
                        }
                    }
                    Err(error) => {
                        let error = Arc::new(error);
                        for answer in answers {
                            let _ = answer.send(Err(Arc::clone(&error)));
                        }
                    }
                }
            }
        };
        tokio::spawn(critical.watch(part, task));
        Batcher { jobs }
    }

    /// Sends `request` with the next batch and waits for its answer.
    async fn call(&self, request: Q) -> Result<A, Failed> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Job { request, answer })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// The error a request gets when its batching task is gone (the café is
/// stopping, or the task failed and the café with it).
fn stopped() -> Failed {
    Arc::new(sqlx::Error::PoolClosed)
}

/// Places a batch: one insert for all, then one look for the orders that
/// matched an earlier one. Answers in the order of `new`.
async fn place_batch(shared: &SharedLine, new: Vec<NewRow>) -> Result<Vec<PlacedRow>, sqlx::Error> {
    let mut inserted: HashMap<String, OrderRow> = shared
        .place_many(&new)
        .await?
        .into_iter()
        .map(|row| (row.order.id.clone(), row))
        .collect();
    let retries: Vec<(&str, &str)> = new
        .iter()
        .filter(|order| !inserted.contains_key(&order.id))
        .filter_map(|order| Some((order.customer.as_str(), order.request_id.as_deref()?)))
        .collect();
    let mut earlier: HashMap<(String, String), OrderRow> = HashMap::new();
    if !retries.is_empty() {
        for row in shared.earlier(&retries).await? {
            if let Some(request_id) = row.order.request_id.clone() {
                earlier.insert((row.order.customer.clone(), request_id), row);
            }
        }
    }
    let mut placed = Vec::with_capacity(new.len());
    for order in &new {
        if let Some(row) = inserted.remove(&order.id) {
            placed.push(PlacedRow { row, is_new: true });
            continue;
        }
        let key = (order.customer.clone(), order.request_id.clone().unwrap_or_default());
        match earlier.get(&key) {
            Some(row) => placed.push(PlacedRow {
                row: row.clone(),
                is_new: false,
            }),
            // The earlier order was forgotten (deleted) between the two
            // statements: placed on its own, which tries again.
            None => placed.push(shared.place(order).await?),
        }
    }
    Ok(placed)
}

/// Writes a batch of READYs: one update for all. Answers in the order of
/// `done`.
async fn ready_batch(
    shared: &SharedLine,
    done: Vec<(String, i64)>,
) -> Result<Vec<Option<OrderRow>>, sqlx::Error> {
    let ids: Vec<&str> = done.iter().map(|(id, _)| id.as_str()).collect();
    let at: Vec<i64> = done.iter().map(|(_, at)| *at).collect();
    let mut written: HashMap<String, OrderRow> = shared
        .ready_many(&ids, &at)
        .await?
        .into_iter()
        .map(|row| (row.order.id.clone(), row))
        .collect();
    Ok(ids.iter().map(|id| written.remove(*id)).collect())
}

/// A barista waiting for an order.
struct Idle {
    barista: Arc<str>,
    answer: oneshot::Sender<Option<Arc<OrderEntry>>>,
}

/// The claim task: holds the idle baristas, oldest first, and whenever the
/// book shows orders queued, claims for as many of them as it can in one
/// statement. Once the café closes it answers every barista `None`.
async fn serve_claims(
    book: Arc<OrderBook>,
    shared: SharedLine,
    mut arriving: mpsc::UnboundedReceiver<Idle>,
) {
    let mut idle: VecDeque<Idle> = VecDeque::new();
    loop {
        // Register for a wake-up before looking, as the book's own claim.
        let joined = book.line_joined();
        tokio::pin!(joined);
        joined.as_mut().enable();
        while let Ok(barista) = arriving.try_recv() {
            idle.push_back(barista);
        }
        idle.retain(|barista| !barista.answer.is_closed());
        if book.is_closed() {
            for barista in idle.drain(..) {
                let _ = barista.answer.send(None);
            }
            match arriving.recv().await {
                Some(barista) => idle.push_back(barista),
                None => return,
            }
            continue;
        }
        let queued = book.queue_len();
        if idle.is_empty() || queued == 0 {
            tokio::select! {
                arrived = arriving.recv() => match arrived {
                    Some(barista) => idle.push_back(barista),
                    None => return,
                },
                () = joined => {}
                () = book.closed() => {}
            }
            continue;
        }
        let wanted = idle.len().min(queued).min(MOST_AT_ONCE);
        let baristas: Vec<&str> = idle.iter().take(wanted).map(|b| &*b.barista).collect();
        match shared.claim_many(&baristas, SystemTime::now()).await {
            Ok(rows) => {
                let short = rows.len() < wanted;
                let mut unserved = Vec::new();
                for row in rows {
                    let barista = idle.pop_front().expect("a barista for each claimed order");
                    match take(&book, &shared, &row).await {
                        Some(entry) => {
                            if barista.answer.send(Some(entry)).is_err() {
                                give_back(&book, &shared, &row).await;
                            }
                        }
                        None => unserved.push(barista),
                    }
                }
                for barista in unserved.into_iter().rev() {
                    idle.push_front(barista);
                }
                if short {
                    // What this café sees queued was claimed elsewhere:
                    // the news is on its way.
                    tokio::select! {
                        () = joined => {}
                        () = tokio::time::sleep(CLAIM_AGAIN) => {}
                        () = book.closed() => {}
                    }
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
                .end(&row.order.id, cafe_domain::order::OrderStatus::Failed, &note, SystemTime::now())
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
    match shared.hand_back(Some(&row.order.id), HANDED_BACK_NOTE).await {
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
