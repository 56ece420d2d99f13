//! `cafe-server`: parse the flags, then run as every server of the café
//! runs ([`grpc_serving::run_main`]): telemetry first (and so flushed
//! last, after the runtime is gone), the runtime `--runtime-workers` sizes,
//! bind, say where it listens, serve until SIGINT or SIGTERM. Everything
//! else lives in the library, where tests can reach it.

use cafe_server::Config;
use clap::Parser;
use grpc_serving as serving;

/// The allocator, chosen by measurement (`services/cafe/examples/load`,
/// release, 2 cores, 2,000 counter customers with a 1 ms brew, two runs
/// each): glibc's malloc cost 121 and 150 µs of server CPU per order,
/// jemalloc 107 and 114, mimalloc 105 and 120. A profile had a quarter of
/// the CPU in glibc's malloc/free and the futex contention of its arenas.
/// jemalloc and mimalloc save about the same; jemalloc kept the peak RSS
/// where glibc had it (45 MB against 42), mimalloc nearly doubled it (87 MB),
/// and memory per open buzzer is one of the café's goals.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    serving::run_main("cafe", config, |config, address| {
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
    })?;
    Ok(())
}
