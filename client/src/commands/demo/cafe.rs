//! A café inside the demo's process, on a tokio runtime of its own.
//!
//! Each demo café gets its own OS thread, running its own multi-thread
//! runtime with a few worker threads (`--workers`), apart from the CLI's
//! runtime. That separation is what makes the barista's half measurable: a
//! café whose baristas block their worker threads (`--brew-mode blocking`)
//! stalls everything on *its* runtime (the menu, new connections, the
//! answers to customers), while the customers and their clocks run on the
//! CLI's runtime and keep going. Were the café on the CLI's runtime, its
//! blocked workers would stall the customers too, and the measurement with
//! them.
//!
//! It is the same `cafe_server::Application` that `cafe-server` runs, bound
//! to `127.0.0.1:0`.

use std::{net::SocketAddr, time::Duration};

use cafe_server::{Application, Config};
use tokio::{net::TcpListener, runtime::RuntimeMetrics, sync::oneshot};

use crate::error::ClientError;

/// How long closing a demo café may take before the demo stops waiting for
/// it: nothing is in flight by then, so it is quick; the bound is there so a
/// stuck café cannot hold the demo open.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// A café running on its own thread and runtime. Dropping it closes the café
/// (its shutdown signal is the `close` sender, which resolves when dropped).
#[derive(Debug)]
pub struct DemoCafe {
    /// Where it listens, e.g. `http://127.0.0.1:44631`.
    pub url: String,
    /// The café runtime's metrics, readable from any thread, even while
    /// every one of its workers is blocked.
    pub metrics: RuntimeMetrics,
    /// Sending (or dropping) this tells the café to close.
    close: Option<oneshot::Sender<()>>,
    /// Resolves with how serving ended, once the café's thread is done.
    finished: oneshot::Receiver<Result<(), String>>,
}

impl DemoCafe {
    /// Starts a café with `config` on a new thread named `name`, with a
    /// runtime of `workers` worker threads, and waits until it listens.
    pub async fn open(config: Config, workers: u16, name: &str) -> Result<Self, ClientError> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(usize::from(workers))
            .thread_name(format!("{name}-worker"))
            .enable_all();
        let runtime = builder
            .build()
            .map_err(|e| ClientError::Demo(format!("cannot start its runtime: {e}")))?;
        let metrics = runtime.metrics();
        let (opened_tx, opened) = oneshot::channel::<Result<SocketAddr, String>>();
        let (close, closed) = oneshot::channel::<()>();
        let (finished_tx, finished) = oneshot::channel();

        // The café's thread owns its runtime: `block_on` serves until
        // `closed` resolves, then the runtime is shut down with it. The
        // thread is not joined: `finished` says when it is done.
        let serve = move || {
            let served = runtime.block_on(async move {
                // Bound inside the runtime: a tokio listener belongs to the
                // runtime whose reactor drives it.
                let listener = match TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = opened_tx.send(Err(format!("cannot listen on 127.0.0.1: {e}")));
                        return Ok(());
                    }
                };
                let app = Application::with_listener(config, listener);
                let _ = opened_tx.send(Ok(app.local_addr()));
                app.serve(async {
                    // A message or a dropped sender: either way, close.
                    let _ = closed.await;
                })
                .await
                .map_err(|e| e.to_string())
            });
            // Tasks left (none, normally) are dropped with the runtime; a
            // blocking brew cannot be interrupted, so wait a moment at most.
            runtime.shutdown_timeout(Duration::from_secs(1));
            let _ = finished_tx.send(served);
        };
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(serve)
            .map_err(|e| ClientError::Demo(format!("cannot start its thread: {e}")))?;

        let addr = opened
            .await
            .map_err(|_| ClientError::Demo("its thread ended before it opened".into()))?
            .map_err(ClientError::Demo)?;
        Ok(DemoCafe {
            url: format!("http://{addr}"),
            metrics,
            close: Some(close),
            finished,
        })
    }

    /// Closes the café in order (as `cafe-server` does on SIGTERM) and waits
    /// for it, within a few seconds.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        match tokio::time::timeout(CLOSE_WITHIN, &mut self.finished).await {
            Ok(Ok(Ok(()))) | Err(_) => Ok(()),
            Ok(Ok(Err(error))) => Err(ClientError::Demo(error)),
            Ok(Err(_)) => Err(ClientError::Demo("its thread ended abruptly".into())),
        }
    }
}
