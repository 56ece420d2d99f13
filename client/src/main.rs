//! `cafe`: the café's command-line client. Parses the command line, starts
//! logging (warnings only, unless `RUST_LOG` says otherwise: the CLI's
//! output is for people), and hands over to the library.

use std::process::ExitCode;

use cafe::telemetry::{self, LogFormat, TelemetryConfig};
use clap::Parser;

fn main() -> ExitCode {
    let cli = cafe_client::cli::Cli::parse();
    let _telemetry = telemetry::init(&TelemetryConfig {
        service_name: "cafe-client",
        log_format: LogFormat::Text,
        default_filter: "warn",
        // Traces go out only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
        otlp_endpoint: None,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cafe_client::run(cli))
}
