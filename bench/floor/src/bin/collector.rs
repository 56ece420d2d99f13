//! `cafe-bench-collector`: an OTLP/gRPC trace sink that only counts spans.
//! On SIGINT or SIGTERM it prints what it received, as one line of JSON on
//! stdout (`{"spans":N,"exports":M}`, and `"trace_ids":[…]` with
//! `--trace-ids`), and exits.

use std::{io::Write, net::SocketAddr};

use anyhow::Context;
use cafe_bench_floor::collector::SpanCounter;
use clap::Parser;
use grpc_serving::shutdown;
use tonic::transport::Server;

/// An OTLP trace sink that answers at once and counts the spans.
#[derive(Debug, Parser)]
#[command(name = "cafe-bench-collector", version, about)]
struct Config {
    /// Address to listen on (OTLP/gRPC).
    #[arg(long, env = "COLLECTOR_LISTEN", default_value = "127.0.0.1:4317")]
    listen: SocketAddr,

    /// Also keep the trace id of every span, printed on exit as
    /// `"trace_ids":[…]` (for deploy/prometheus/check-live: was the trace an
    /// exemplar names received?) [default: only count].
    #[arg(long, env = "COLLECTOR_TRACE_IDS")]
    trace_ids: bool,
}

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let counter = if config.trace_ids {
        SpanCounter::keeping_trace_ids()
    } else {
        SpanCounter::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Server::builder()
            // The OTLP exporter's batches can be large (512 spans by
            // default, more when tuned); tonic's 4 MiB default would refuse
            // a big one.
            .add_service(counter.service(64 << 20))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                shutdown::signal(),
            )
            .await
            .context("the gRPC server failed")
    })?;
    let mut stdout = std::io::stdout().lock();
    let trace_ids = counter
        .trace_ids()
        .map(|ids| {
            let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
            format!(",\"trace_ids\":[{}]", quoted.join(","))
        })
        .unwrap_or_default();
    writeln!(
        stdout,
        "{{\"spans\":{},\"exports\":{}{trace_ids}}}",
        counter.spans(),
        counter.exports()
    )?;
    Ok(())
}
