//! A call's span from its request to its gRPC status, wherever that status
//! turns up: in the response headers (an error answered at once,
//! "trailers-only"), in the trailers at the end of the body (every
//! successful call, and every stream), or nowhere (the body was dropped: the
//! call was cancelled).
//!
//! Who owns the span when: the layer opens it and lends it to the inner
//! service while that builds the response future; [`TracedResponse`] owns
//! it while the response head is awaited; then it moves into the response
//! body, [`TracedBody`], which hyper polls frame by frame until the
//! trailers. The span ends when its last owner drops it, so a streaming
//! call's span is exactly as long as the stream.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::ContextGuard;
use pin_project_lite::pin_project;
use tonic::Code;
use tracing::{Span, span::Entered};
use tracing_opentelemetry_instrumentation_sdk::http::grpc::status_is_error;

use super::TRACE_ID_HEADER;

/// Which side of a call a span describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Server,
    Client,
}

impl Side {
    /// Whether `code` marks the span as failed, by the RPC conventions: a
    /// client failed whenever it did not get OK; a server only when the
    /// fault is its own (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
    /// INTERNAL, UNAVAILABLE, DATA_LOSS).
    fn is_error(self, code: Code) -> bool {
        // Codes are 0..=16.
        status_is_error(code as u16, self == Side::Server)
    }
}

/// A call's span until its status is known. Dropping it unfinished (the
/// body went away before its trailers) records the call as cancelled.
#[derive(Debug)]
pub(super) struct CallSpan {
    span: Span,
    side: Side,
    /// The caller's context when `span` cannot carry it (no OpenTelemetry
    /// layer: nothing is exported). Made current while the call runs, so
    /// logs and onward calls still name the caller's trace.
    fallback: Option<opentelemetry::Context>,
    finished: bool,
}

/// While a call runs: its span entered and, without export, the caller's
/// context current. Fields drop in order: the span is left first.
pub(super) struct InCall<'a> {
    _entered: Entered<'a>,
    _context: Option<ContextGuard>,
}

impl CallSpan {
    /// The call's span, or `None` when there is nothing to record or make
    /// current (a disabled span and no caller context).
    pub(super) fn new(
        span: Span,
        side: Side,
        fallback: Option<opentelemetry::Context>,
    ) -> Option<Self> {
        (!span.is_disabled() || fallback.is_some()).then_some(CallSpan {
            span,
            side,
            fallback,
            finished: false,
        })
    }

    /// Enters the call: for as long as the returned guard lives.
    pub(super) fn enter(&self) -> InCall<'_> {
        // The context first, so the span (when it exists) nests inside it.
        let context = self.fallback.clone().map(opentelemetry::Context::attach);
        InCall {
            _entered: self.span.enter(),
            _context: context,
        }
    }

    fn finish(mut self, code: Code, message: &str) {
        self.record(code, message);
    }

    fn record(&mut self, code: Code, message: &str) {
        self.finished = true;
        self.span.record("rpc.grpc.status_code", code as i32);
        if self.side.is_error(code) {
            self.span.record("otel.status_code", "ERROR");
            // The span has no `otel.status_description` field; the status
            // message goes where the crate puts a failed call's reason.
            if !message.is_empty() {
                self.span.record("exception.message", message);
            }
        }
    }

    /// Finishes the call from headers or trailers carrying `grpc-status`;
    /// gives the span back if they carry none.
    fn finish_from(self, headers: &HeaderMap) -> Option<Self> {
        match tonic::Status::from_header_map(headers) {
            Some(status) => {
                self.finish(status.code(), status.message());
                None
            }
            None => Some(self),
        }
    }
}

impl Drop for CallSpan {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Code::Cancelled, "the call ended before its status arrived");
        }
    }
}

pin_project! {
    /// A response body that carries its call's span and closes it when the
    /// trailers (with the gRPC status) pass through.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        call: Option<CallSpan>,
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // Encoding a streamed message happens here, inside the call.
        let polled = {
            let _in_call = this.call.as_ref().map(CallSpan::enter);
            this.inner.poll_frame(cx)
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    *this.call = this.call.take().and_then(|call| call.finish_from(trailers));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown, "the response body failed");
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown, "the response ended without a gRPC status");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The response future of a traced call: runs inside the call and moves
    /// its span into the body when the response head arrives.
    pub struct TracedResponse<F> {
        #[pin]
        inner: F,
        call: Option<CallSpan>,
        trace_id: Option<HeaderValue>,
    }
}

impl<F> TracedResponse<F> {
    /// A call traced by `call`, answering with `trace_id` in `x-trace-id`
    /// when given.
    pub(super) fn new(inner: F, call: Option<CallSpan>, trace_id: Option<HeaderValue>) -> Self {
        TracedResponse {
            inner,
            call,
            trace_id,
        }
    }
}

impl<F, B, E> Future for TracedResponse<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<http::Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _in_call = this.call.as_ref().map(CallSpan::enter);
            this.inner.poll(cx)
        };
        let result = match polled {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        let call = this.call.take();
        match result {
            Ok(mut response) => {
                if let Some(trace_id) = this.trace_id.take() {
                    response.headers_mut().insert(TRACE_ID_HEADER, trace_id);
                }
                // An error answered at once comes "trailers-only": the
                // status is in the headers and the call is over.
                let call = call.and_then(|call| call.finish_from(response.headers()));
                Poll::Ready(Ok(response.map(|inner| TracedBody { inner, call })))
            }
            Err(error) => {
                if let Some(call) = call {
                    call.finish(Code::Unavailable, &error.to_string());
                }
                Poll::Ready(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_fail_only_on_their_own_faults() {
        assert!(!Side::Server.is_error(Code::NotFound));
        assert!(!Side::Server.is_error(Code::Cancelled));
        assert!(Side::Server.is_error(Code::Internal));
        assert!(Side::Server.is_error(Code::Unavailable));
        assert!(Side::Client.is_error(Code::NotFound));
        assert!(Side::Client.is_error(Code::Cancelled));
        assert!(!Side::Client.is_error(Code::Ok));
    }
}
