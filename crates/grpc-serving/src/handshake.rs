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
//! they are for hyper to read, so nothing has to hand them back to it
//! afterwards. A client that sends the preface a byte
//! at a time is held to the same deadline.
//!
//! # With TLS
//!
//! The bytes on the socket are then TLS records, and the preface comes
//! inside them, so it cannot be peeked at. [`tls_within`] holds the whole
//! of it to the same deadline instead: the TLS handshake, then reading the
//! preface out of the TLS stream into a [`Rewound`], which hands those 24
//! bytes to hyper before anything else it reads.
//!
//! It also looks at the very first byte: a TLS connection starts with a
//! handshake record (`0x16`), an HTTP/2 client that forgot TLS with the
//! preface's `P`. That client is told so in words ([`Began::Plaintext`],
//! answered by the transport) rather than left with a TLS alert its HTTP/2
//! parser cannot read.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

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

/// The first byte of a TLS connection: a handshake record (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The first byte of a plaintext HTTP/2 connection (`PRI * HTTP/2.0`).
const PREFACE_FIRST: u8 = b'P';

/// How a connection to a TLS port began.
#[derive(Debug)]
pub enum Began {
    /// TLS, and the HTTP/2 preface inside it.
    Tls(Box<Rewound<TlsStream<TcpStream>>>),
    /// A plaintext HTTP/2 client: it gets an answer that says to use TLS.
    Plaintext(TcpStream),
}

/// Within `timeout` of now: the TLS handshake with the config `acceptor`
/// holds, then the HTTP/2 preface inside it. A plaintext HTTP/2 client is
/// handed back as [`Began::Plaintext`]; anything else that is not TLS, a
/// failed handshake (a client that does not trust our certificate, or
/// presents none when `--tls-client-ca` asks for one) or silence past the
/// deadline is an error, and the connection is closed.
pub async fn tls_within(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> io::Result<Began> {
    let began = async {
        let mut first = [0; 1];
        if stream.peek(&mut first).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match first[0] {
            TLS_HANDSHAKE_RECORD => {}
            PREFACE_FIRST => return Ok(Began::Plaintext(stream)),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "neither TLS nor HTTP/2 on a TLS port",
                ));
            }
        }
        let mut tls = acceptor.accept(stream).await?;
        let mut preface = [0; PREFACE_LEN];
        tls.read_exact(&mut preface).await?;
        Ok(Began::Tls(Box::new(Rewound::new(preface, tls))))
    };
    match tokio::time::timeout(timeout, began).await {
        Ok(began) => began,
        Err(_elapsed) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no TLS handshake and HTTP/2 preface within the handshake timeout",
        )),
    }
}

/// A stream whose first bytes, already read from it (the preface), are
/// read again before the rest: the preface was read to know it had come in
/// time, and hyper must still see it.
#[derive(Debug)]
pub struct Rewound<S> {
    preface: [u8; PREFACE_LEN],
    /// How much of `preface` has been handed out.
    given: usize,
    inner: S,
}

impl<S> Rewound<S> {
    fn new(preface: [u8; PREFACE_LEN], inner: S) -> Self {
        Rewound {
            preface,
            given: 0,
            inner,
        }
    }

    /// The stream underneath (the TLS session, for its peer's certificate).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.given < PREFACE_LEN {
            let rest = &this.preface[this.given..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.given += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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

    /// An acceptor with a self-signed certificate made now.
    fn acceptor() -> TlsAcceptor {
        use rustls::{ServerConfig, pki_types::PrivateKeyDer};
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivateKeyDer::try_from(made.key_pair.serialize_der()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        TlsAcceptor::from(std::sync::Arc::new(config))
    }

    #[tokio::test]
    async fn a_tls_handshake_that_stalls_is_closed_at_the_timeout() {
        let (mut client, server) = pair().await;
        // The first byte of a ClientHello, and nothing more.
        client.write_all(&[TLS_HANDSHAKE_RECORD]).await.unwrap();
        let error = tls_within(acceptor(), server, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_plaintext_http2_client_is_handed_back_to_be_told() {
        let (mut client, server) = pair().await;
        client.write_all(PREFACE).await.unwrap();
        let began = tls_within(acceptor(), server, Duration::from_secs(20))
            .await
            .unwrap();
        assert!(matches!(began, Began::Plaintext(_)), "{began:?}");
    }

    #[tokio::test]
    async fn neither_tls_nor_http2_is_refused() {
        let (mut client, server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let error = tls_within(acceptor(), server, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
