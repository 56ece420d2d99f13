//! `cafe-barista`: parse the flags, start telemetry, bind, serve until
//! SIGINT or SIGTERM. Everything else lives in the library.

use anyhow::Context;
use cafe_barista::{Application, Config};
use cafe_core::{
    shutdown,
    telemetry::{self, TelemetryConfig},
};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init(&TelemetryConfig {
        service_name: "barista",
        log_format: config.log_format,
        default_filter: "info",
        otlp_endpoint: config.otlp_endpoint.clone(),
    });

    // Built by hand, not with `#[tokio::main]`, so that `--runtime-workers`
    // can set how many threads it has.
    let runtime = config.runtime().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(config.clone()).await?;
        tracing::info!(
            address = %app.local_addr(),
            replica = %config.name,
            baristas = config.baristas,
            time_scale = %config.time_scale,
            brew_mode = config.brew_mode.as_str(),
            "baristas ready"
        );
        app.serve(shutdown::signal()).await?;
        anyhow::Ok(())
    })
}
