//! The handshake timeout: a connection that has not sent the HTTP/2
//! preface within `--handshake-timeout` of being accepted is closed.
//!
//! Without it a socket that connects and then says nothing holds a
//! connection slot (and a file descriptor) for as long as the client
//! likes: a few thousand of them starve every real client once
//! `--max-connections` or the process's file limit is reached. hyper waits
//! for the preface forever, so the wait is bounded here, before hyper is
//! given the connection: [`preface_within`] *peeks* at the socket until the
//! preface (the fixed 24 bytes `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` every
//! HTTP/2 client starts with) has arrived. Peeking leaves the bytes where
//! they are for hyper to read, so nothing wraps the connection afterwards
//! and its reads cost nothing more. A client that sends the preface a byte
//! at a time is held to the same deadline.

use std::{io, time::Duration};

use tokio::net::TcpStream;

/// The length of the HTTP/2 client connection preface.
const PREFACE_LEN: usize = 24;

/// How long to wait before peeking again when only part of the preface has
/// arrived: `peek` returns at once while any bytes wait unread, so without
/// a pause it would spin. Real clients send the preface in one piece.
const PEEK_AGAIN: Duration = Duration::from_millis(10);

/// Resolves once the first 24 bytes (the preface's length) have arrived on
/// `stream`, without reading them; fails with `TimedOut` if they have not
/// within `timeout`, or if the client closed first.
pub async fn preface_within(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    let arrived = async {
        let mut preface = [0; PREFACE_LEN];
        loop {
            match stream.peek(&mut preface).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                PREFACE_LEN => return Ok(()),
                _part => tokio::time::sleep(PEEK_AGAIN).await,
            }
        }
    };
    match tokio::time::timeout(timeout, arrived).await {
        Ok(arrived) => arrived,
        Err(_elapsed) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no HTTP/2 preface within the handshake timeout",
        )),
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// A connected pair: (client, server).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn silence_past_the_timeout_fails() {
        let (_client, server) = pair().await;
        let error = preface_within(&server, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn half_a_preface_is_not_enough() {
        let (mut client, server) = pair().await;
        client.write_all(&PREFACE[..12]).await.unwrap();
        let error = preface_within(&server, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn the_preface_is_left_for_the_reader() {
        let (mut client, mut server) = pair().await;
        client.write_all(&PREFACE[..10]).await.unwrap();
        let waiting = tokio::spawn(async move {
            preface_within(&server, Duration::from_secs(20)).await?;
            let mut read = vec![0; PREFACE.len()];
            server.read_exact(&mut read).await?;
            Ok::<_, io::Error>(read)
        });
        client.write_all(&PREFACE[10..]).await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), PREFACE);
    }
}
