//! `cafe-bench-floor`: serves the café's contract by only sleeping the brew
//! time, until SIGINT or SIGTERM. See [`cafe_bench_floor::floor`].

use std::net::SocketAddr;

use anyhow::Context;
use cafe_bench_floor::{floor::FloorCafe, proto::cafe_server::CafeServer};
use cafe_domain::menu::TimeScale;
use clap::Parser;
use grpc_serving::shutdown;
use tonic::transport::{Server, server::TcpIncoming};

/// A bare tonic server for `cafe.v1.Cafe` that only sleeps the brew time.
#[derive(Debug, Parser)]
#[command(name = "cafe-bench-floor", version, about)]
struct Config {
    /// Address to listen on.
    #[arg(long, env = "FLOOR_LISTEN", default_value = "127.0.0.1:50071")]
    listen: SocketAddr,

    /// Multiplier on the menu's brew times, as the café's --time-scale.
    #[arg(long, env = "FLOOR_TIME_SCALE", default_value = "1")]
    time_scale: TimeScale,

    /// How many orders may brew at once [default: no limit, every order
    /// brews as soon as it arrives].
    #[arg(long, env = "FLOOR_BARISTAS")]
    baristas: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        // The same transport settings as the café: TCP_NODELAY for the
        // buzzers' small events, everything else tonic's defaults.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        Server::builder()
            .add_service(CafeServer::new(FloorCafe::new(
                config.time_scale,
                config.baristas,
            )))
            .serve_with_incoming_shutdown(incoming, shutdown::signal())
            .await
            .context("the gRPC server failed")
    })
}
