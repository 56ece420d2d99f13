//! The calls open on one connection, counted, so that a connection with no
//! call for `--idle-timeout` can be closed, and so that a closing server
//! sends GOAWAY once a client has stopped sending new calls; and
//! [`ServedCalls`], everything a server watches each call for.
//!
//! A call is open from the moment its request reaches the service until its
//! status has been sent (for a buzzer: after the last event) or its
//! response dropped (the client reset it, the connection died). The count lives
//! in a `watch` channel, so the connection's task can wait for "none open
//! for this long" without polling.

use std::{sync::Arc, time::Duration};

use http::Request;
use tokio::sync::watch;

use grpc_telemetry::{
    outcome::{CallObserver, MakeObserver, Outcome},
    propagation::{CallSpan, InCall, ServerTracing},
};

use crate::metrics::rpc::{RpcMetrics, TimedCall};

/// The calls open on one connection. Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct OpenCalls(watch::Sender<Counts>);

/// What [`OpenCalls`] keeps.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Calls open now.
    open: usize,
    /// Calls ever opened: a call that starts and ends while the idle timer
    /// runs still shows up here.
    started: u64,
}

impl OpenCalls {
    /// Counts a new call until the returned guard is dropped.
    fn open(&self) -> CallGuard {
        self.0.send_modify(|counts| {
            counts.open += 1;
            counts.started += 1;
        });
        CallGuard(self.clone())
    }

    /// Resolves once no call has been open for `timeout` in a row.
    pub async fn idle_for(&self, timeout: Duration) {
        let mut counts = self.0.subscribe();
        loop {
            // `wait_for` looks at the current value first; the sender lives
            // in `self`, so the channel cannot close while we wait.
            // Copied out at once: the channel's read lock is never held
            // across an `.await`.
            let Ok(started) = counts
                .wait_for(|counts| counts.open == 0)
                .await
                .map(|now| now.started)
            else {
                return;
            };
            let another_call = counts.wait_for(|counts| counts.started != started);
            if tokio::time::timeout(timeout, another_call).await.is_err() {
                return;
            }
        }
    }

    /// Resolves once no new call has started for `quiet` in a row (calls
    /// already open may go on).
    pub async fn quiet_for(&self, quiet: Duration) {
        let mut counts = self.0.subscribe();
        loop {
            let started = counts.borrow_and_update().started;
            let another_call = counts.wait_for(|counts| counts.started != started);
            if tokio::time::timeout(quiet, another_call).await.is_err() {
                return;
            }
        }
    }
}

/// One open call; dropping it ends the call's count.
#[derive(Debug)]
struct CallGuard(OpenCalls);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|counts| counts.open -= 1);
    }
}

/// How a server watches its calls on one connection: each call counted
/// open, timed by method (with `--metrics-listen`) and traced, all told
/// the call's outcome by one [`Observe`](grpc_telemetry::outcome::Observe) wrapper.
#[derive(Debug, Clone)]
pub struct ServedCalls {
    calls: OpenCalls,
    metrics: Option<Arc<RpcMetrics>>,
}

impl ServedCalls {
    /// Counts calls in `calls` and times them in `metrics`, if any.
    pub fn new(calls: OpenCalls, metrics: Option<Arc<RpcMetrics>>) -> Self {
        ServedCalls { calls, metrics }
    }
}

/// One call as a server watches it.
#[derive(Debug)]
pub struct ServedCall {
    span: Option<CallSpan>,
    timed: Option<TimedCall>,
    _open: CallGuard,
}

impl MakeObserver for ServedCalls {
    type Observer = ServedCall;

    fn observe<B>(&self, request: &mut Request<B>) -> ServedCall {
        ServedCall {
            _open: self.calls.open(),
            timed: self
                .metrics
                .as_ref()
                .map(|metrics| metrics.start(request.uri().path())),
            span: ServerTracing.observe(request),
        }
    }
}

impl CallObserver for ServedCall {
    fn enter(&self) -> Option<InCall<'_>> {
        self.span.enter()
    }

    fn respond(&mut self, headers: &mut http::HeaderMap) {
        self.span.respond(headers);
    }

    fn finish(self, outcome: Outcome<'_>) {
        if let Some(timed) = self.timed {
            // The exemplar: this call's trace, if it is exported.
            let trace_id = self.span.as_ref().and_then(CallSpan::exported_trace_id);
            timed.finish(outcome.code, trace_id);
        }
        self.span.finish(outcome);
        // Dropping `_open` ends the call's count.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_last_call_and_the_whole_timeout() {
        let calls = OpenCalls::default();
        let timeout = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let call = calls.open();
        let idle = tokio::spawn({
            let calls = calls.clone();
            async move { calls.idle_for(timeout).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished(), "idle with a call open");
        drop(call);
        // Another call starts and ends half-way: the timer starts again.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(calls.open());
        idle.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(45));
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_once_no_call_has_started_for_a_while() {
        let calls = OpenCalls::default();
        let quiet = Duration::from_millis(100);
        let started = tokio::time::Instant::now();
        let _long_call = calls.open();
        let quieted = tokio::spawn({
            let calls = calls.clone();
            async move { calls.quiet_for(quiet).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(calls.open());
        quieted.await.unwrap();
        // Open calls do not count, the one that started at 50 ms does.
        assert_eq!(started.elapsed(), Duration::from_millis(150));
    }
}
