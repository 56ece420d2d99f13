//! The two steps of GOAWAY, with time between them for the calls a client
//! had already sent.
//!
//! hyper closes a connection gracefully as RFC 9113 says: a first GOAWAY
//! that refuses nothing (last stream 2^31-1), a PING, and once the PING's
//! answer is back, a second GOAWAY naming the last call it took; calls
//! after that one are ignored, and the client fails them itself. A tonic
//! client answers the PING *before* it writes the calls it had queued when
//! the first GOAWAY came (h2 sends a PING's answer ahead of stream frames),
//! so a client busy sending has calls on the wire behind its answer, and
//! each of those was failed `INTERNAL` ("GoAway NO_ERROR"): the second
//! GOAWAY came one round trip too early.
//!
//! [`Settling`] sits between the socket and hyper, reading the client's
//! frames as they pass (their 9-byte headers only: no copy, nothing else
//! parsed). When the answer to the shutdown PING arrives it is held back,
//! and handed to hyper only once the client has sent no new call for
//! [`SETTLE`] (or after [`SETTLE_AT_MOST`], or when the grace is over and
//! the calls are cut, see [`super::cut`]): every call sent before the
//! client saw the first GOAWAY has arrived, is taken, and is answered
//! (`UNAVAILABLE` with the retry hint, from a closing server), and the
//! second GOAWAY names the last of them. Nothing else is held or changed.
//!
//! And the socket is closed only after the client has closed its side:
//! when hyper is done it sends its last frames and a FIN, and drops this
//! wrapper, which hands the socket back ([`Settling::new`]'s `give_back`)
//! for [`linger`] to read out until the client closes too. Closing a socket
//! with bytes still unread from the client makes the kernel send a reset,
//! and the client then loses the answers it had not read yet.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    sync::oneshot,
    time::{Instant, Sleep},
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::hold::Gate;

/// How long a client must have sent no new call, after answering the
/// shutdown PING, before hyper is given the answer: the calls it wrote
/// right behind the answer have long arrived by then.
pub(super) const SETTLE: Duration = Duration::from_millis(500);
/// The longest the answer is held, for a client that goes on sending.
pub(super) const SETTLE_AT_MOST: Duration = Duration::from_millis(1500);
/// The longest a closed connection's socket waits for its client to close
/// its side (a client does at once, once it has read the last GOAWAY).
const LINGER: Duration = Duration::from_secs(2);

/// The client connection preface, passed through before any frame.
const PREFACE_LEN: usize = 24;
/// An HTTP/2 frame header: length (3 bytes), type, flags, stream id (4).
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
/// The payload h2 puts in the PING of a graceful shutdown (h2's
/// `Ping::SHUTDOWN`): its answer is the one held.
const SHUTDOWN_PAYLOAD: [u8; 8] = [0x0b, 0x7b, 0xa2, 0xf0, 0x8b, 0x9b, 0xfe, 0x54];
/// The whole answer: a PING frame with the ACK flag on stream 0.
const SHUTDOWN_ACK_LEN: usize = FRAME_HEADER + SHUTDOWN_PAYLOAD.len();

/// A connection's bytes, with the answer to the shutdown PING held back
/// until the client's last calls are in (see the module docs).
#[derive(Debug)]
pub(super) struct Settling<S> {
    /// The socket; taken only when this is dropped, to be given back.
    inner: Option<S>,
    give_back: Option<oneshot::Sender<S>>,
    /// Bytes of the preface still to pass.
    preface_left: usize,
    /// Bytes of the current frame's payload still to pass.
    payload_left: usize,
    /// The current frame's header, as far as it has arrived.
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// The held answer, when it came, and the timer that releases it.
    held: Option<Held>,
    /// Bytes to hand on before reading more: the released answer, or what
    /// was read after a `partial` frame.
    released: Vec<u8>,
    /// The start of a frame that may be the answer, cut by the end of a
    /// read: kept back until the rest arrives.
    partial: Vec<u8>,
    /// Whether the answer is still to come: h2 sends one shutdown PING per
    /// connection, so once it is answered the bytes only pass.
    watching: bool,
    /// Cancelled when the grace is over: nothing is held any more.
    cut: CancellationToken,
    /// Opened when the answer comes: the calls [`Hold`] keeps go on.
    gate: Gate,
}

#[derive(Debug)]
struct Held {
    frame: [u8; SHUTDOWN_ACK_LEN],
    since: Instant,
    release: Pin<Box<Sleep>>,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Held {
    /// Whether the answer may go on now; if not, this read is woken when
    /// it may.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> bool {
        self.release.as_mut().poll(cx).is_ready() || self.cut.as_mut().poll(cx).is_ready()
    }
}

impl<S> Settling<S> {
    /// `inner`, read through as the module docs say, opening `gate` when
    /// the answer comes; when dropped, it is sent to `give_back`.
    pub(super) fn new(
        inner: S,
        cut: CancellationToken,
        gate: Gate,
        give_back: oneshot::Sender<S>,
    ) -> Self {
        Settling {
            inner: Some(inner),
            give_back: Some(give_back),
            preface_left: PREFACE_LEN,
            payload_left: 0,
            header: [0; FRAME_HEADER],
            header_len: 0,
            held: None,
            released: Vec::new(),
            partial: Vec::new(),
            watching: true,
            cut,
            gate,
        }
    }

    /// Walks the bytes just read, frame by frame, and takes the shutdown
    /// PING's answer out of them; returns how many are left, moved to the
    /// front. A frame that may be the answer but is cut by the end of the
    /// read is kept back in `partial` until the rest arrives.
    fn scan(&mut self, data: &mut [u8]) -> usize {
        if !self.watching {
            return data.len();
        }
        let (mut read, mut kept) = (0, 0);
        let pass = |data: &mut [u8], read: &mut usize, kept: &mut usize, n: usize| {
            // Bytes move only after an answer was taken out of this read.
            if *read != *kept {
                data.copy_within(*read..*read + n, *kept);
            }
            *read += n;
            *kept += n;
        };
        while read < data.len() {
            let left = data.len() - read;
            if self.preface_left > 0 {
                let n = self.preface_left.min(left);
                self.preface_left -= n;
                pass(data, &mut read, &mut kept, n);
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(left);
                self.payload_left -= n;
                pass(data, &mut read, &mut kept, n);
            } else if self.header_len == 0
                && self.held.is_none()
                && let Some(frame) = shutdown_ack(&data[read..])
            {
                // The client has read GOAWAY: the calls it sent before are
                // in, and it sends no more here.
                self.gate.open();
                let now = Instant::now();
                self.held = Some(Held {
                    frame,
                    since: now,
                    release: Box::pin(tokio::time::sleep_until(now + SETTLE)),
                    cut: Box::pin(self.cut.clone().cancelled_owned()),
                });
                read += SHUTDOWN_ACK_LEN;
            } else if self.header_len == 0
                && self.held.is_none()
                && left < SHUTDOWN_ACK_LEN
                && may_be_shutdown_ack(&data[read..])
            {
                self.partial.extend_from_slice(&data[read..]);
                read = data.len();
            } else {
                let n = (FRAME_HEADER - self.header_len).min(left);
                self.header[self.header_len..self.header_len + n]
                    .copy_from_slice(&data[read..read + n]);
                self.header_len += n;
                pass(data, &mut read, &mut kept, n);
                if self.header_len == FRAME_HEADER {
                    self.header_len = 0;
                    let [a, b, c, kind, ..] = self.header;
                    self.payload_left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                    if kind == HEADERS
                        && let Some(held) = &mut self.held
                    {
                        // A call sent behind the answer: wait for the
                        // client to be done.
                        let at = (Instant::now() + SETTLE).min(held.since + SETTLE_AT_MOST);
                        held.release.as_mut().reset(at);
                    }
                }
            }
        }
        kept
    }
}

impl<S> Settling<S> {
    fn inner(&mut self) -> Pin<&mut S>
    where
        S: Unpin,
    {
        Pin::new(self.inner.as_mut().expect("taken only when dropped"))
    }
}

impl<S> Drop for Settling<S> {
    fn drop(&mut self) {
        if let (Some(inner), Some(give_back)) = (self.inner.take(), self.give_back.take()) {
            // Nobody waiting (the connection's task is gone): it closes here.
            let _ = give_back.send(inner);
        }
    }
}

/// Reads out and throws away what the client still sends on a connection
/// hyper has finished with, until the client closes its side (or for at
/// most [`LINGER`]), and only then closes the socket (see the module
/// docs).
pub(super) async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S) {
    // hyper has said all it will: the FIN, if it has not gone already.
    let _ = socket.shutdown().await;
    let read_out = async {
        let mut sink = [0u8; 4096];
        while socket.read(&mut sink).await.is_ok_and(|read| read > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, read_out).await;
}

/// Whether `start`, shorter than a whole frame, may begin the answer to
/// the shutdown PING.
fn may_be_shutdown_ack(start: &[u8]) -> bool {
    let mut answer = [0u8; SHUTDOWN_ACK_LEN];
    answer[..4].copy_from_slice(&[0, 0, 8, PING]);
    answer[4] = ACK;
    answer[9..].copy_from_slice(&SHUTDOWN_PAYLOAD);
    // The flags may carry other bits; the rest must match.
    start.iter().zip(answer).enumerate().all(
        |(at, (&got, want))| {
            if at == 4 { got & ACK != 0 } else { got == want }
        },
    )
}

/// The answer to the shutdown PING, if `data` starts with it.
fn shutdown_ack(data: &[u8]) -> Option<[u8; SHUTDOWN_ACK_LEN]> {
    let frame: [u8; SHUTDOWN_ACK_LEN] = data.get(..SHUTDOWN_ACK_LEN)?.try_into().ok()?;
    let is_ack = frame[..3] == [0, 0, 8]
        && frame[3] == PING
        && frame[4] & ACK != 0
        && frame[5..9] == [0; 4]
        && frame[9..] == SHUTDOWN_PAYLOAD;
    is_ack.then_some(frame)
}

impl<S: AsyncRead + Unpin> AsyncRead for Settling<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.released.is_empty() {
                let n = this.released.len().min(buf.remaining());
                buf.put_slice(&this.released[..n]);
                this.released.drain(..n);
                return Poll::Ready(Ok(()));
            }
            // Polling the timer here registers this read for its wake-up.
            if let Some(held) = &mut this.held
                && held.poll_release(cx)
            {
                this.released.extend_from_slice(&held.frame);
                this.held = None;
                this.watching = false;
                continue;
            }
            if !this.partial.is_empty() {
                // The rest of a frame cut short: read into a buffer of our
                // own, so the frame can be looked at whole, and hand on
                // from `released`.
                let mut more = [0u8; 4096];
                let mut more = ReadBuf::new(&mut more);
                ready!(this.inner().poll_read(cx, &mut more))?;
                let mut data = std::mem::take(&mut this.partial);
                if more.filled().is_empty() {
                    // The client closed mid-frame: hand on what came.
                    this.released = data;
                    if this.released.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                data.extend_from_slice(more.filled());
                // Scanned again from the frame's start, as if read at once.
                let kept = this.scan(&mut data);
                data.truncate(kept);
                this.released = data;
                continue;
            }
            let start = buf.filled().len();
            ready!(this.inner().poll_read(cx, buf))?;
            let end = buf.filled().len();
            if end == start {
                // The client closed: whatever is held goes on first.
                if let Some(held) = this.held.take() {
                    this.released.extend_from_slice(&held.frame);
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            let kept = this.scan(&mut buf.filled_mut()[start..end]);
            buf.set_filled(start + kept);
            if kept > 0 {
                return Poll::Ready(Ok(()));
            }
            // All of it was the held answer: read on (an empty read would
            // say the client closed).
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Settling<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(S::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        frame.extend_from_slice(&[0, 0, 0, 1]);
        frame.extend_from_slice(payload);
        frame
    }

    fn settling(server: DuplexStream, gate: Gate) -> Settling<DuplexStream> {
        Settling::new(server, CancellationToken::new(), gate, oneshot::channel().0)
    }

    fn shutdown_answer() -> Vec<u8> {
        let mut answer = frame(PING, ACK, &SHUTDOWN_PAYLOAD);
        answer[5..9].copy_from_slice(&[0; 4]);
        answer
    }

    #[tokio::test(start_paused = true)]
    async fn the_shutdown_answer_waits_until_the_calls_behind_it_are_in() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let gate = Gate::new(CancellationToken::new());
        gate.close();
        let mut server = settling(server, gate.clone());
        let preface = [b'P'; PREFACE_LEN];
        let call = frame(HEADERS, 0x4, b"call");
        // The answer, then a call that was queued behind it.
        let mut sent = preface.to_vec();
        sent.extend(shutdown_answer());
        sent.extend(&call);
        client.write_all(&sent).await.unwrap();

        let mut got = vec![0; preface.len() + call.len()];
        server.read_exact(&mut got).await.unwrap();
        let mut expected = preface.to_vec();
        expected.extend(&call);
        assert_eq!(got, expected, "the call is handed on, the answer held");
        assert!(!gate.holds(), "the answer seen, held calls go on");

        // The answer comes once the client has been quiet for SETTLE.
        let before = Instant::now();
        let mut answer = vec![0; SHUTDOWN_ACK_LEN];
        server.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, shutdown_answer());
        assert!(before.elapsed() >= SETTLE);
    }

    #[tokio::test]
    async fn other_pings_and_frames_pass_unchanged() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let gate = Gate::new(CancellationToken::new());
        gate.close();
        let mut server = settling(server, gate.clone());
        let mut sent = vec![b'P'; PREFACE_LEN];
        sent.extend(frame(PING, ACK, &[1; 8]));
        sent.extend(frame(0x0, 0x1, &[7; 300]));
        client.write_all(&sent).await.unwrap();
        drop(client);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent);
        assert!(
            gate.holds(),
            "only the shutdown PING's answer opens the gate"
        );
    }
}
