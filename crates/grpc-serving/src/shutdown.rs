//! Waiting for the signal to close, shared by every server binary (the café
//! and the barista backend).
//!
//! - SIGINT is what Ctrl-C sends: a person at a terminal wants it to stop.
//! - SIGTERM is what `docker stop`, Kubernetes and systemd send: the
//!   orchestrator wants it to stop, and will send SIGKILL if it takes longer
//!   than its grace period. `--shutdown-grace` must fit inside that.

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
