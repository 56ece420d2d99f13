//! `cafe`: the café's command-line client. Parses the command line, starts
//! telemetry (log warnings only, unless `RUST_LOG` says otherwise: the CLI's
//! output is for people; traces only with `--otlp-endpoint`), and hands over
//! to the library. (A tokio-console build, the `console` feature, reports
//! to tokio-console instead: see `cafe_client::console`.)
//!
//! The telemetry guard is made first, so it is dropped last: after the
//! runtime, once every span has ended. Dropping it sends the last spans, so
//! `main` always *returns* (Ctrl-C and errors included, see `run`) and never
//! calls `std::process::exit`, which would skip the drop and lose them.

use std::process::ExitCode;

#[cfg(not(feature = "console"))]
use grpc_telemetry::{self as telemetry, LogFormat, TelemetryConfig};

fn main() -> ExitCode {
    let cli = match cafe_client::cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // A tokio-console build reports every task to tokio-console instead of
    // exporting traces (see `cafe_client::console`).
    #[cfg(feature = "console")]
    {
        cafe_client::console::init();
        if cli.exports_traces() {
            eprintln!("warning: a tokio-console build does not export traces");
        }
    }
    #[cfg(not(feature = "console"))]
    let _telemetry = telemetry::init(&TelemetryConfig {
        service_name: "cafe-client",
        log_format: LogFormat::Text,
        default_filter: "warn",
        // `--otlp-endpoint` or OTEL_EXPORTER_OTLP_ENDPOINT; none: no export.
        otlp_endpoint: cli.otlp_endpoint.clone(),
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
