//! A server from its configuration to its exit. [`Application`] binds
//! first, so a caller (a test, the CLI's `demo`) learns the port before
//! anything is served, then serves until told to close; [`run_main`] is the
//! body of every server binary's `main`. What is one server's own comes from
//! its [`Serve`] implementation, in its `startup.rs`.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use super::{
    StartupError,
    flags::{ServerEnv, ServerFlags},
    server::{OnOpen, Server, bind},
    tls::{self, ServerTls},
};
use grpc_telemetry::TelemetryConfig;

use crate::shutdown;

/// What one server brings to the scaffold, implemented by its
/// configuration: where it keeps the flags every server has, and how it
/// serves.
pub trait Serve: Sized + Send + 'static {
    /// The flags every server has, inside this server's configuration.
    fn flags(&self) -> &ServerFlags<impl ServerEnv>;

    /// Builds what the server needs, sets its health on `server`
    /// ([`Server::health`]), then hands [`Server::serve`] its gRPC service
    /// and its closing steps.
    fn serve(self, server: Server) -> impl Future<Output = Result<(), StartupError>> + Send;
}

/// A server bound to its address, ready to serve. Each server names it for
/// its configuration: `pub type Application = serving::Application<Config>`.
#[derive(Debug)]
pub struct Application<C> {
    listener: TcpListener,
    /// `--metrics-listen`, bound.
    metrics_listener: Option<TcpListener>,
    /// `--tls-cert` and `--tls-key`, read (and `--tls-client-ca`).
    tls: Option<Arc<ServerTls>>,
    /// Said once it serves ([`Application::on_open`]).
    on_open: Option<OnOpen>,
    config: C,
}

impl<C: Serve> Application<C> {
    /// Reads the TLS files if given (an error names the file), then binds
    /// `--listen`, and `--metrics-listen` if given.
    pub async fn build(config: C) -> Result<Self, StartupError> {
        let tls = config
            .flags()
            .tls_files()
            .map(ServerTls::load)
            .transpose()?;
        let listener = bind(config.flags().listen).await?;
        let mut app = Self::with_listener(config, listener);
        app.tls = tls.map(Arc::new);
        if let Some(address) = app.config.flags().metrics_listen {
            let metrics = TcpListener::bind(address)
                .await
                .map_err(|source| StartupError::BindMetrics { address, source })?;
            app = app.with_metrics_listener(metrics);
        }
        Ok(app)
    }

    /// Uses a listener bound elsewhere (tests bind `127.0.0.1:0`);
    /// `--listen` is ignored, and so is `--metrics-listen` (see
    /// [`Application::with_metrics_listener`]), and so are the TLS flags
    /// (see [`Application::with_tls`]).
    pub fn with_listener(config: C, listener: TcpListener) -> Self {
        Application {
            listener,
            metrics_listener: None,
            tls: None,
            on_open: None,
            config,
        }
    }

    /// Serves over TLS with `tls` (read already, e.g. by a test that
    /// reloads it): what [`Application::build`] does with the TLS flags.
    pub fn with_tls(mut self, tls: Arc<ServerTls>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The server's TLS, if it has any: [`ServerTls::reload`] swaps the
    /// certificate for new connections (`run_main` does it on SIGHUP).
    pub fn tls(&self) -> Option<&Arc<ServerTls>> {
        self.tls.as_ref()
    }

    /// Serves metrics on a listener bound elsewhere (tests bind
    /// `127.0.0.1:0`).
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// Where metrics are served (with the real port when 0 was asked), if
    /// they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|listener| {
            listener
                .local_addr()
                .expect("a bound listener has an address")
        })
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Runs `on_open` once it serves (see [`Server::on_open`]): after
    /// everything the server opens before taking calls, not before.
    pub fn on_open(mut self, on_open: OnOpen) -> Self {
        self.on_open = Some(on_open);
        self
    }

    /// The configuration it serves with.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// Serves until `shutdown` resolves, then closes in order within
    /// `--shutdown-grace` (the order is in [`super::server`] and in each
    /// server's `startup.rs`).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let flags = self.config.flags();
        let mut server = Server::new(
            self.listener,
            shutdown,
            flags.shutdown_grace,
            flags.limits(),
            flags.max_message_size as usize,
        );
        if let Some(metrics) = self.metrics_listener {
            server = server.with_metrics(metrics);
        }
        if let Some(tls) = self.tls {
            server = server.with_tls(tls);
        }
        if let Some(on_open) = self.on_open {
            server = server.on_open(on_open);
        }
        self.config.serve(server).await
    }
}

/// How a server binary's `main` ends: `0` once it has served and closed;
/// otherwise `1`, after saying why on stderr in one line
/// ([`StartupError::one_line`]).
pub fn exit_code(served: Result<(), StartupError>) -> std::process::ExitCode {
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.one_line());
            std::process::ExitCode::FAILURE
        }
    }
}

/// The body of every server binary's `main`, after parsing its flags:
///
/// 1. telemetry first. Its guard is made first and so dropped last: after
///    the runtime (and every task and span in it) is gone, it flushes the
///    last spans to the collector. It must outlive the runtime, not the
///    reverse.
/// 2. the runtime, built by hand rather than with `#[tokio::main]` so that
///    `--runtime-workers` can set how many threads it has;
/// 3. bind (the metrics endpoint, if any, is logged), then serve: once the
///    server serves (its store open, its service up), `opened` says where
///    it listens and with what; a start that fails says nothing of the kind;
/// 4. with TLS, reload the certificate on every SIGHUP
///    ([`tls::reload_on_sighup`]);
/// 5. serve until SIGINT or SIGTERM ([`shutdown::signal`]), then close
///    within the grace.
///
/// `service_name` names the process in logs and traces (`cafe`, `barista`).
pub fn run_main<C: Serve + Clone>(
    service_name: &'static str,
    config: C,
    opened: impl FnOnce(&C, SocketAddr) + Send + 'static,
) -> Result<(), StartupError> {
    let flags = config.flags();
    let _telemetry = grpc_telemetry::init(&TelemetryConfig {
        service_name,
        log_format: flags.log_format,
        default_filter: "info",
        otlp_endpoint: flags.otlp_endpoint.clone(),
    });
    let runtime = flags.runtime().map_err(StartupError::Runtime)?;
    runtime.block_on(async {
        let app = Application::build(config).await?;
        let (announced, address) = (app.config().clone(), app.local_addr());
        let app = app.on_open(OnOpen::new(move || opened(&announced, address)));
        if let Some(address) = app.metrics_addr() {
            tracing::info!(%address, "metrics for Prometheus at http://{address}/metrics");
        }
        #[cfg(unix)]
        if let Some(tls) = app.tls() {
            // For the life of the process: the runtime ends it on exit.
            tokio::spawn(tls::reload_on_sighup(Arc::clone(tls)));
        }
        app.serve(shutdown::signal()).await
    })
}
