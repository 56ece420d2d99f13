//! `cafe-server`: parse the flags, then run as every server of the café
//! runs ([`grpc_serving::run_main`]): telemetry first (and so flushed
//! last, after the runtime is gone), the runtime `--runtime-workers` sizes,
//! bind, serve (saying where it listens once it does) until SIGINT or
//! SIGTERM. Everything else lives in the library, where tests can reach it.

use std::process::ExitCode;

use cafe_server::Config;
use clap::Parser;
use grpc_serving as serving;

/// The allocator, chosen by measurement (docs/performance.md, "The
/// allocator"): glibc's malloc spent much of the café's CPU in its arenas'
/// contention; jemalloc and mimalloc saved about the same, and jemalloc
/// kept the peak memory where glibc had it, which matters because memory
/// per open buzzer is one of the café's goals.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read once at its start (the C string
/// `malloc_conf`, under the `_rjem_` prefix tikv-jemallocator gives its
/// symbols): `background_thread` gives freed pages back to the system on
/// a thread of its own, on jemalloc's decay clock. Without it they are
/// given back only while the café allocates, so an idle café kept the
/// memory of a connection storm for ever (tests/it/storm.rs).
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 23] = b"background_thread:true\0";

fn main() -> ExitCode {
    let config = Config::parse();
    let served = serving::run_main("cafe", config, |config, address| {
        let remote_baristas: Vec<String> = config
            .barista_endpoints
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::info!(
            %address,
            baristas = config.baristas,
            time_scale = %config.time_scale,
            brew_mode = config.brew_mode.as_str(),
            remote_baristas = remote_baristas.join(","),
            "café open"
        );
    });
    serving::exit_code(served)
}
