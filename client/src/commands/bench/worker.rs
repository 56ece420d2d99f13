//! The workers of `cafe bench`: a fixed pool, one call in flight each,
//! sending the next call as soon as the last one ends, so that exactly
//! `--concurrency` orders are in flight all the time (the `L` of Little's
//! law). Nothing is spawned or collected per call but a few counters.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cafe_domain::proto::v1::{self as pb, GetMenuRequest, OrderRequest, cafe_client::CafeClient};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Status, transport::Channel};

use super::{
    backoff::{self, Backoff},
    tally::{Outcome, Tally},
};
use crate::cli::BenchRpc;

/// Everything the workers share. Owned by an `Arc`: the run and each
/// worker hold one, and it is dropped when the last worker ends.
pub(super) struct Shared {
    pub(super) rpc: BenchRpc,
    /// Built once and cloned per call (tonic takes each request by value).
    pub(super) request: OrderRequest,
    pub(super) timeout: Option<Duration>,
    pub(super) warmup_end: Instant,
    /// With `--duration`: the window's end.
    pub(super) window_end: Option<Instant>,
    /// With `--requests`: how many calls have been started after the
    /// warm-up, and the most there may be.
    pub(super) started: AtomicU64,
    pub(super) planned: Option<u64>,
    /// Cancelled at the window's end, or on Ctrl-C: every worker stops,
    /// dropping its call in flight (which resets its HTTP/2 stream, so the
    /// café cancels the order).
    pub(super) stop: CancellationToken,
    /// Counts, sharded so that the workers rarely meet on one lock.
    pub(super) shards: Vec<Mutex<Tally>>,
}

impl Shared {
    fn tally(&self, shard: usize) -> std::sync::MutexGuard<'_, Tally> {
        // A worker that panicked mid-record leaves counts that are still
        // counts; keep them.
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `message` as a request, with the `--timeout` deadline if any.
    fn with_deadline<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        request
    }
}

/// One worker: one call after another on its own handle to a shared
/// connection, from `first_call` until the run says stop. Returns nothing;
/// what it saw is in its shard.
pub(super) async fn worker(
    mut cafe: CafeClient<Channel>,
    shared: Arc<Shared>,
    shard: usize,
    mut backoff: Backoff,
    first_call: Instant,
) {
    // Made once and polled again at every call: one registration with the
    // token for the worker's whole life, not one per call.
    let stopped = shared.stop.cancelled();
    tokio::pin!(stopped);
    // How long to wait before the next call: the ramp's share first, then
    // after an `UNAVAILABLE`.
    let mut wait: Option<Duration> =
        Some(first_call.saturating_duration_since(Instant::now())).filter(|wait| !wait.is_zero());
    loop {
        if let Some(wait) = wait.take() {
            // The stop ends the wait too: a worker backing off is not a
            // call in flight, so nothing is abandoned.
            tokio::select! {
                biased;
                () = &mut stopped => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if shared.stop.is_cancelled() {
            return;
        }
        let started = Instant::now();
        // With --duration, no call starts after the window: it could only
        // be abandoned.
        if shared
            .window_end
            .is_some_and(|window_end| started >= window_end)
        {
            return;
        }
        // With --requests, a call started after the warm-up takes a ticket;
        // when they are all taken this worker is done.
        let ticketed = match shared.planned {
            Some(planned) if started >= shared.warmup_end => {
                if shared.started.fetch_add(1, Ordering::Relaxed) >= planned {
                    return;
                }
                true
            }
            _ => false,
        };
        let (outcome, failure) = tokio::select! {
            // The stop first: once the window is over, a call that happens
            // to end in the same instant is abandoned, not counted late.
            biased;
            () = &mut stopped => {
                shared.tally(shard).abandoned += 1;
                return;
            }
            ended = call(&mut cafe, &shared) => ended,
        };
        let ended = Instant::now();
        let hinted = failure.as_ref().is_some_and(|status| {
            status.code() == Code::Unavailable && backoff::retry_hint(status).is_some()
        });
        wait = backoff.after(failure.as_ref());
        let measured = match shared.window_end {
            Some(window_end) => ended >= shared.warmup_end && ended < window_end,
            None => ticketed,
        };
        let mut tally = shared.tally(shard);
        if measured {
            tally.record(outcome, ended - started);
            tally.hinted += u64::from(hinted);
        } else if shared
            .window_end
            .is_some_and(|window_end| ended >= window_end)
        {
            // Ended between the window's end and the stop reaching this
            // worker: it was in flight at the end, like the cancelled ones.
            tally.abandoned += 1;
        } else {
            tally.warmup += 1;
        }
    }
}

/// Makes one call and says how it ended, with the failed call's status
/// (the worker reads its retry hint).
async fn call(cafe: &mut CafeClient<Channel>, shared: &Shared) -> (Outcome, Option<Status>) {
    let failed = |status: Status| (Outcome::Status(status.code()), Some(status));
    let calling = async {
        match shared.rpc {
            BenchRpc::Counter => match cafe
                .order_coffee(shared.with_deadline(shared.request.clone()))
                .await
            {
                Ok(response) => (
                    Outcome::of_order(response.into_inner().order.map_or(0, |order| order.status)),
                    None,
                ),
                Err(status) => failed(status),
            },
            BenchRpc::Buzzer => {
                let mut buzzer = match cafe
                    .order_with_buzzer(shared.with_deadline(shared.request.clone()))
                    .await
                {
                    Ok(response) => response.into_inner(),
                    Err(status) => return failed(status),
                };
                // Read every event; only the last one's status matters,
                // and only if the stream then ends OK.
                let mut last = pb::OrderStatus::Unspecified as i32;
                loop {
                    match buzzer.message().await {
                        Ok(Some(event)) => {
                            last = event.order.map_or(last, |order| order.status);
                        }
                        Ok(None) => return (Outcome::of_order(last), None),
                        Err(status) => return failed(status),
                    }
                }
            }
            BenchRpc::Menu => match cafe.get_menu(shared.with_deadline(GetMenuRequest {})).await {
                Ok(_) => (Outcome::Status(Code::Ok), None),
                Err(status) => failed(status),
            },
        }
    };
    match shared.timeout {
        // tonic's client sends the deadline as `grpc-timeout` but does not
        // itself stop waiting; a café that ignores it must not hang the run.
        Some(timeout) => tokio::time::timeout(timeout, calling)
            .await
            .unwrap_or((Outcome::Status(Code::DeadlineExceeded), None)),
        None => calling.await,
    }
}
