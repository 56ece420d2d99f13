//! A TCP proxy that cuts its link on demand, between a café and its
//! PostgreSQL: the tests' counterpart of `bench/faultproxy.py`, in the
//! test's own runtime so a test can cut and restore without a Python.
//!
//! [`FaultProxy::cut`] aborts every open connection and refuses new ones
//! (what a database restarting or a network partition ending in resets
//! looks like from the café) until [`FaultProxy::restore`];
//! [`FaultProxy::stall`] holds every new connection, accepted but never
//! answered (a frozen database). Each accepted connection is one task
//! copying both ways; it watches the proxy's state in a `watch` channel
//! and drops both sockets the moment the link is cut.

use std::net::SocketAddr;

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// What the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Bytes flow.
    Up,
    /// Open connections are aborted, new ones refused.
    Cut,
    /// New connections are held, unanswered.
    Stalled,
}

/// A proxy on `127.0.0.1:0` to one upstream address; it stops when dropped.
pub struct FaultProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The link's state: sent by the test, watched by every connection's
    /// task.
    link: watch::Sender<Link>,
    accepting: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, the link up.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("its address");
        let link = watch::Sender::new(Link::Up);
        let watching = link.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut state = watching.subscribe();
                tokio::spawn(async move {
                    // A stalled link holds the connection until it is up or
                    // cut; a cut one drops it at once.
                    // Copied out: the channel's read lock is not held
                    // across the next `.await`.
                    let now = match state.wait_for(|link| *link != Link::Stalled).await {
                        Ok(now) => *now,
                        Err(_) => return,
                    };
                    if now == Link::Cut {
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    // Ends when either side closes, or at the cut: then both
                    // sockets are dropped here, mid-stream.
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|link| *link == Link::Cut) => {}
                    }
                });
            }
        });
        FaultProxy {
            addr,
            link,
            accepting,
        }
    }

    /// `url` (`postgres://USER@HOST:PORT/DB`) with its host and port
    /// replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("a URL with a user");
        let path = rest.find('/').map(|at| &rest[at..]).unwrap_or("");
        format!("{scheme_user}@{}{path}", self.addr)
    }

    /// Aborts every open connection (a reset) and refuses new ones.
    pub fn cut(&self) {
        self.link.send_replace(Link::Cut);
    }

    /// Holds every new connection, accepted but unanswered, until the link
    /// is restored or cut.
    pub fn stall(&self) {
        self.link.send_replace(Link::Stalled);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.link.send_replace(Link::Up);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}
