//! Calls still open when a closing server's grace is over are *answered*
//! `UNAVAILABLE`, not cut off with their connection.
//!
//! A connection dropped with calls open leaves its client to find out from
//! the socket: tonic reports each of those calls `UNKNOWN` ("stream closed
//! because of a broken pipe"), a code that says something broke and that no
//! client retries. So at the end of the grace, [`Transport::close`]
//! cancels a token every call watches ([`Cut`]): a call whose response has
//! not begun is answered `UNAVAILABLE` at once, and a stream under way (a
//! buzzer) ends with `UNAVAILABLE` trailers after what it has sent. A moment
//! later their answers are on the wire, the connections have closed by
//! themselves, and only then is anything left dropped.
//!
//! The answer comes first, though: a call or stream whose answer is ready
//! when the grace ends (a buzzer told, by the closing steps just finished,
//! that its order is kept for the restart) sends that answer, not the cut.
//!
//! [`Transport::close`]: super::Transport::close

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::ResponseBody;

/// What a call still open at the end of the grace is told.
pub const CUT_SHORT: &str = "the server closed before this call was answered: try again (on another replica, or here once it is back)";

/// A connection's service, each call answered [`CUT_SHORT`] once `cut` is
/// cancelled.
#[derive(Debug, Clone)]
pub(super) struct Cut<S> {
    inner: S,
    cut: CancellationToken,
}

impl<S> Cut<S> {
    pub(super) fn new(inner: S, cut: CancellationToken) -> Self {
        Cut { inner, cut }
    }
}

impl<S, B> tower::Service<Request<Incoming>> for Cut<S>
where
    // `HttpService<B>`, spelled out: the response's body type must be
    // named here for `B` to be this impl's.
    S: tower::Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: ResponseBody,
{
    type Response = Response<CutBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let answer = self.inner.call(request);
        let cut = self.cut.clone();
        Box::pin(async move {
            // The answer first: a call answered as the grace ends is
            // answered, not cut.
            tokio::select! {
                biased;
                Ok(response) = answer => Ok(response.map(|body| CutBody::new(body, cut))),
                () = cut.cancelled() => Ok(cut_short()),
            }
        })
    }
}

/// A trailers-only `UNAVAILABLE` response saying [`CUT_SHORT`].
fn cut_short<B>() -> Response<CutBody<B>> {
    let (parts, ()) = tonic::Status::unavailable(CUT_SHORT)
        .into_http::<()>()
        .into_parts();
    Response::from_parts(parts, CutBody::ended())
}

/// A response body that ends with `UNAVAILABLE` trailers once cut.
#[derive(Debug)]
pub(super) struct CutBody<B> {
    /// `None` once it has ended, by itself or cut.
    body: Option<B>,
    cut: Option<CancellationToken>,
    /// Made only when the body has to wait (a stream between events): a
    /// unary answer, ready at once, never pays for it.
    waiting: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Whether the body had its last look after the cut: once cut, it is
    /// polled once more, and what it has ready goes out before the cut.
    last_look: bool,
}

impl<B> CutBody<B> {
    fn new(body: B, cut: CancellationToken) -> Self {
        CutBody {
            body: Some(body),
            cut: Some(cut),
            waiting: None,
            last_look: false,
        }
    }

    fn ended() -> Self {
        CutBody {
            body: None,
            cut: None,
            waiting: None,
            last_look: false,
        }
    }

    /// Ends the body: the trailers that say it was cut short.
    fn cut_short(&mut self) -> Frame<Bytes> {
        self.body = None;
        let mut trailers = HeaderMap::new();
        // Trailers of a status are its headers (grpc-status, grpc-message).
        let status = tonic::Status::unavailable(CUT_SHORT).into_http::<()>();
        trailers.extend(status.headers().clone());
        trailers.remove(http::header::CONTENT_TYPE);
        Frame::trailers(trailers)
    }
}

impl<B: ResponseBody> Body for CutBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let (Some(body), Some(cut)) = (&mut this.body, &this.cut) else {
            return Poll::Ready(None);
        };
        // Once cut, the body has one last look: what it has ready then
        // (its final status) goes out, and only then the cut.
        let cut_already = cut.is_cancelled();
        if cut_already && this.last_look {
            return Poll::Ready(Some(Ok(this.cut_short())));
        }
        this.last_look = cut_already;
        match Pin::new(body).poll_frame(cx) {
            Poll::Pending if cut_already => Poll::Ready(Some(Ok(this.cut_short()))),
            Poll::Pending => {
                let waiting = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(cut.clone().cancelled_owned()));
                if waiting.as_mut().poll(cx).is_ready() {
                    // Cut since the body was looked at: polled again at
                    // once, for its last look.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.body = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                // The status: nothing follows it, not even the cut.
                this.body = None;
                Poll::Ready(Some(Ok(frame)))
            }
            frame => frame,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or(SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A body whose frames are ready at once, then one that never ends.
    struct Frames(Vec<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            match self.0.pop() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => Poll::Pending,
            }
        }
    }

    fn grpc_status(frame: &Frame<Bytes>) -> Option<&str> {
        frame.trailers_ref()?.get("grpc-status")?.to_str().ok()
    }

    async fn next(body: &mut CutBody<Frames>) -> Option<Frame<Bytes>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
            .await
            .map(|frame| frame.unwrap())
    }

    #[tokio::test]
    async fn a_status_ready_when_the_grace_ends_is_sent_not_cut() {
        let mut ok = HeaderMap::new();
        ok.insert("grpc-status", "0".parse().unwrap());
        let cut = CancellationToken::new();
        let mut body = CutBody::new(Frames(vec![Frame::trailers(ok)]), cut.clone());
        cut.cancel();
        let answer = next(&mut body).await.expect("the status");
        assert_eq!(grpc_status(&answer), Some("0"), "the body's own status");
        assert!(next(&mut body).await.is_none(), "and nothing after it");
    }

    #[tokio::test]
    async fn a_stream_with_nothing_ready_when_the_grace_ends_is_cut() {
        let cut = CancellationToken::new();
        let event = Frame::data(Bytes::from_static(b"event"));
        let mut body = CutBody::new(Frames(vec![event]), cut.clone());
        assert!(next(&mut body).await.unwrap().is_data(), "what it sent");
        let waiting = tokio::spawn(async move { next(&mut body).await });
        tokio::task::yield_now().await;
        cut.cancel();
        let end = waiting.await.unwrap().expect("the cut");
        assert_eq!(grpc_status(&end), Some("14"), "UNAVAILABLE");
    }
}
