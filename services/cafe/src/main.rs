//! `cafe-server`: parse the flags, start telemetry, bind, serve until SIGINT
//! or SIGTERM. Everything else lives in the library, where tests can reach it.
//!
//! The telemetry guard is the first thing made and so the last dropped:
//! after the runtime (and every task and span in it) is gone, it flushes the
//! last spans to the collector. It must outlive the runtime, not the reverse.

use anyhow::Context;
use cafe_core::{
    shutdown,
    telemetry::{self, TelemetryConfig},
};
use cafe_server::{Application, Config};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init(&TelemetryConfig {
        service_name: "cafe",
        log_format: config.log_format,
        default_filter: "info",
        otlp_endpoint: config.otlp_endpoint.clone(),
    });

    // The runtime is built by hand, not with `#[tokio::main]`, so that
    // `--runtime-workers` can set how many threads it has.
    let runtime = config.runtime().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(config.clone()).await?;
        tracing::info!(
            address = %app.local_addr(),
            baristas = config.baristas,
            time_scale = %config.time_scale,
            brew_mode = config.brew_mode.as_str(),
            remote_baristas = %config
                .barista_endpoints
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            "café open"
        );
        app.serve(shutdown::signal()).await?;
        anyhow::Ok(())
    })
}
