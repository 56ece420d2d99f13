//! `cafe-barista`: parse the flags, then run as every server of the café
//! runs ([`grpc_serving::run_main`]): telemetry first (and so flushed
//! last), the runtime, bind, serve (saying where it listens once it does)
//! until SIGINT or SIGTERM. Everything else lives in the library.

use std::process::ExitCode;

use cafe_barista::Config;
use clap::Parser;
use grpc_serving as serving;

/// The same allocator as the café's, for the same measured reasons (see
/// `services/cafe/src/main.rs`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    let served = serving::run_main("barista", config, |config, address| {
        tracing::info!(
            %address,
            replica = %config.name,
            baristas = config.baristas,
            time_scale = %config.time_scale,
            brew_mode = config.brew_mode.as_str(),
            "baristas ready"
        );
    });
    serving::exit_code(served)
}
