//! What a barista replica tells Prometheus beside what every server does
//! (calls by method and status, live tasks: [`grpc_serving::metrics`]): its
//! brews in flight and its free baristas, read from the station and the
//! brews' task tracker when scraped. Every metric is described in
//! `docs/metrics.md`.

use std::{fmt, sync::Arc};

use grpc_serving::metrics::{Collector, DescriptorEncoder, gauge};
use tokio_util::task::TaskTracker;

use crate::station::Station;

/// The replica's own gauges; registered by `startup` with
/// `Server::register_collector`.
#[derive(Debug)]
pub struct BaristaCollector {
    station: Arc<Station>,
    brews: TaskTracker,
}

impl BaristaCollector {
    /// Reads `station` and the brew tasks tracked by `brews`.
    pub fn new(station: Arc<Station>, brews: TaskTracker) -> Self {
        BaristaCollector { station, brews }
    }
}

impl Collector for BaristaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        gauge(
            &mut encoder,
            "barista_brews_in_flight",
            "Brew calls being served, each with its barista (a replica keeps no queue).",
            self.brews.len() as u64,
        )?;
        gauge(
            &mut encoder,
            "barista_baristas",
            "Baristas of this replica (--baristas).",
            self.station.size() as u64,
        )?;
        gauge(
            &mut encoder,
            "barista_baristas_free",
            "Baristas with nothing to brew; at 0 a new brew is turned away (RESOURCE_EXHAUSTED).",
            (self.station.size() - self.station.busy()) as u64,
        )
    }
}
