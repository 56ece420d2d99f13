//! The HTTP/2 settings every connection gets: the flags' ([`Limits`]) and
//! those that are not flags, chosen for what the café's calls are: many
//! small messages, streams that stay open for minutes, and a load generator
//! keeping 10,000 orders (or 100,000 buzzers) in flight over a few
//! connections.

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Limits;

/// What one call may send before the server reads it: every request is one
/// message under 1 KiB, so the HTTP/2 default (64 KiB) holds it many times
/// over.
const STREAM_WINDOW: u32 = 64 * 1024;
/// What all the calls of one connection may send before the server reads
/// them, at least: 10,000 requests sent at once (about 1 MB with framing)
/// arrive without waiting for window updates, and one connection can pin
/// at most this much unread request data. A higher stream limit raises it
/// (see [`connection_window`]).
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// h2 counts each small DATA frame received and not yet read as this many
/// bytes of framing overhead (`DEFAULT_DATA_FRAME_OVERHEAD_THRESHOLD`), and
/// closes the connection with GOAWAY `ENHANCE_YOUR_CALM` once the unread
/// ones pass half the connection window: its defence against floods of
/// tiny frames.
const SMALL_FRAME_COST: u32 = 256;
/// Streams a client may open and reset before the server has accepted
/// them, after which h2 answers GOAWAY `ENHANCE_YOUR_CALM` (the "rapid
/// reset" attack, CVE-2023-44487). h2's own default, written down here.
const MAX_PENDING_RESETS: usize = 20;
/// The HTTP/2 settings every connection gets.
pub(super) fn settings(limits: &Limits) -> http2::Builder<TokioExecutor> {
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        // Keepalive pings and their timeout need a timer.
        .timer(TokioTimer::new())
        // Silent for minutes is normal for a buzzer: pings find clients that vanished.
        .keep_alive_interval(limits.keepalive_interval)
        // A live peer answers a ping at once; one silent this long is gone, its calls end.
        .keep_alive_timeout(limits.keepalive_timeout)
        // Bounds what one client can pin, far above the 10,000 calls a load test keeps open.
        .max_concurrent_streams(limits.max_streams_per_connection)
        // A request is one message under 1 KiB: the HTTP/2 default window holds many.
        .initial_stream_window_size(STREAM_WINDOW)
        // Shared by all calls: every stream's request may wait unread at once.
        .initial_connection_window_size(connection_window(limits.max_streams_per_connection))
        // Fixed windows: BDP probing is for bulk transfers, and would reset both to 64 KiB.
        .adaptive_window(false)
        // A client resetting streams faster than they are accepted gets GOAWAY.
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS);
    http2
}

/// The connection window for a stream limit of `max_streams`: large enough
/// that every stream the client may open can have its request (one small
/// DATA frame) waiting unread at once. Each such frame counts against h2's
/// budget for small frames, half the connection window: below this, a
/// client that opens the streams the server offers, faster than a busy
/// server reads them (100,000 buzzers on 10 connections), has its
/// connection closed and all its calls cut.
fn connection_window(max_streams: u32) -> u32 {
    // HTTP/2's largest window is 2^31 - 1 bytes.
    const LARGEST: u32 = (1 << 31) - 1;
    max_streams
        .saturating_mul(2 * SMALL_FRAME_COST)
        .clamp(CONNECTION_WINDOW, LARGEST)
}
