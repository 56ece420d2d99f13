//! The handshake timeout: a connection that has not sent the HTTP/2
//! preface within `--handshake-timeout` of being accepted is closed.
//!
//! Without it a socket that connects and then says nothing holds a
//! connection slot (and a file descriptor) for as long as the client
//! likes: a few thousand of them starve every real client once
//! `--max-connections` or the process's file limit is reached. hyper waits
//! for the preface forever, so the wait is bounded here, below it: the
//! connection's reads fail once the time is up and the preface (the fixed
//! 24 bytes `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` every HTTP/2 client starts
//! with) has not all arrived. A client that sends it a byte at a time is
//! held to the same deadline. Once the preface is in, the deadline is gone
//! and the connection is read as it is.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

/// The length of the HTTP/2 client connection preface.
const PREFACE_LEN: usize = 24;

/// A connection whose reads fail with `TimedOut` if the HTTP/2 preface has
/// not arrived in time; otherwise it is `io` unchanged.
#[derive(Debug)]
pub struct Handshake<IO> {
    io: IO,
    /// Bytes of the preface still to come.
    preface_left: usize,
    /// When the preface must be in; `None` once it is. Boxed so that the
    /// wrapper stays `Unpin`.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<IO> Handshake<IO> {
    /// `io`, which must send the preface within `timeout` from now.
    pub fn new(io: IO, timeout: Duration) -> Self {
        Handshake {
            io,
            preface_left: PREFACE_LEN,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Handshake<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Polled beside the read, so the timer wakes the connection even
        // when the client sends nothing at all.
        if let Some(deadline) = &mut self.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        if self.deadline.is_some() {
            self.preface_left = self.preface_left.saturating_sub(read);
            if self.preface_left == 0 {
                self.deadline = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Handshake<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_past_the_timeout_fails_the_read() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = Handshake::new(server, Duration::from_secs(10));
        let mut buf = [0; 64];
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn half_a_preface_is_not_enough() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = Handshake::new(server, Duration::from_secs(10));
        client.write_all(b"PRI * HTTP/2").await.unwrap();
        let mut buf = [0; 64];
        assert_eq!(server.read(&mut buf).await.unwrap(), 12);
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_preface_the_connection_may_be_quiet() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = Handshake::new(server, Duration::from_secs(10));
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0; 64];
        assert_eq!(server.read(&mut buf).await.unwrap(), PREFACE_LEN);
        tokio::time::sleep(Duration::from_secs(60)).await;
        client.write_all(b"more").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 4);
    }
}
