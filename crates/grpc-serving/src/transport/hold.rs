//! While a server closes, a new call is held until its client has read
//! GOAWAY, and answered only then.
//!
//! hyper's client (tonic's) sends a call in two steps, on a task of its
//! own: it checks that the connection is open, then opens the call's
//! stream. Another task reads the server's frames. When that one reads
//! GOAWAY between the two steps, the call fails `INTERNAL` ("GoAway
//! NO_ERROR"), however gracefully the server closes. A client that sends
//! again at once, whatever it hears, always has some call between the two
//! steps, so a GOAWAY sent to it catches one now and then.
//!
//! So once the transport closes, [`Hold`] keeps each new call waiting
//! until the client has answered the PING that follows the first GOAWAY
//! ([`Settling`](super::Settling) sees the answer go by). A client reads
//! frames in order, so by then it has read GOAWAY and sends nothing more
//! on this connection. A client that waits for each answer before it sends
//! again is quiet in the meantime, and GOAWAY finds it waiting, not
//! sending. The held calls are then answered as any other call of a closing
//! server (`UNAVAILABLE`, with the retry hint), or `UNAVAILABLE` by
//! [`Cut`](super::Cut) if the grace ends first.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::{BoxFuture, Either};
use http::Request;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

/// When one connection's new calls are held, and when they go on. Clones
/// share it (one for every call: hyper clones the service per call).
#[derive(Debug, Clone)]
pub(super) struct Gate(Arc<Moments>);

#[derive(Debug)]
struct Moments {
    /// Cancelled when the transport starts closing this connection: new
    /// calls are held from then on.
    closing: CancellationToken,
    /// Cancelled when the client has answered GOAWAY's PING: held calls go
    /// on, and new ones pass.
    open: CancellationToken,
    /// Cancelled at the end of the grace: held calls go on, to be cut.
    cut: CancellationToken,
}

impl Gate {
    /// A gate that also opens when `cut` is cancelled.
    pub(super) fn new(cut: CancellationToken) -> Self {
        Gate(Arc::new(Moments {
            closing: CancellationToken::new(),
            open: CancellationToken::new(),
            cut,
        }))
    }

    /// From now on, new calls wait until [`Gate::open`].
    pub(super) fn close(&self) {
        self.0.closing.cancel();
    }

    /// The client has read GOAWAY: held calls go on, and new ones pass.
    pub(super) fn open(&self) {
        self.0.open.cancel();
    }

    /// Whether a call that comes now is held.
    pub(super) fn holds(&self) -> bool {
        let moments = &self.0;
        // Checked first: all a call pays while the server is open.
        moments.closing.is_cancelled()
            && !moments.open.is_cancelled()
            && !moments.cut.is_cancelled()
    }
}

/// A connection's service, its new calls held by a [`Gate`] (see the
/// module docs).
#[derive(Debug, Clone)]
pub(super) struct Hold<S> {
    inner: S,
    gate: Gate,
}

impl<S> Hold<S> {
    pub(super) fn new(inner: S, gate: Gate) -> Self {
        Hold { inner, gate }
    }
}

impl<S> tower::Service<Request<Incoming>> for Hold<S>
where
    S: tower::Service<Request<Incoming>, Future: Send + 'static> + Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        if !self.gate.holds() {
            return Either::Left(self.inner.call(request));
        }
        // The service made ready by `poll_ready` goes with the call; a
        // clone stays for the next one.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let gate = Arc::clone(&self.gate.0);
        Either::Right(Box::pin(async move {
            tokio::select! {
                () = gate.open.cancelled() => {}
                () = gate.cut.cancelled() => {}
            }
            inner.call(request).await
        }))
    }
}
