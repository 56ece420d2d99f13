//! The café's shared library: what the café, the baristas and the client all
//! need to speak to each other.
//!
//! # Layout
//! - [`proto`]: the gRPC contract, generated from `proto/cafe/v1/*.proto` at
//!   build time (see `build.rs`), and the descriptor set for reflection.
//! - [`codec`]: how those messages go on the wire: prost's codec with
//!   call buffers sized for the café's small messages.
//! - [`menu`]: the drinks, their brew times and sizes, as plain Rust types.
//! - [`order`]: what an order is and how it moves from queued to ready.
//! - [`brewing`]: how a barista spends the brew time (async, or the blocking
//!   anti-pattern), and the baristas' names. The café's embedded baristas
//!   and the barista backend both brew with it.
//! - [`convert`]: the one translation layer between the domain types and
//!   their protobuf messages.
//! - [`deadline`]: the caller's gRPC deadline on the server side, answered
//!   with `DEADLINE_EXCEEDED` and passed on to the calls made for them.
//! - [`serving`]: what every server does alike: the shared flags, bind,
//!   the connections and their limits, HTTP/2 settings, layers, health,
//!   reflection, the bounded shutdown (GOAWAY, retry hints), the steps of
//!   `main`, and a bad request as a status.
//! - [`status`]: a bad request's field violations as `INVALID_ARGUMENT`
//!   with `google.rpc.BadRequest` details, the same from every server.
//! - [`shutdown`]: the signals (SIGINT, SIGTERM) that close a server.
//! - [`telemetry`]: logs and traces for every binary, set up once; the OTLP
//!   exporter that never slows the service down.
//! - [`outcome`]: the one wrapper that reads a call's outcome (at its
//!   headers, its trailers, or its drop) for whoever watches calls.
//! - [`propagation`]: one trace across processes: the tower layers that carry
//!   the W3C trace context in gRPC metadata and open a span per call.
//! - [`metrics`]: what an operator watches a server by, for Prometheus
//!   (`--metrics-listen`): every call timed by method and status, and
//!   gauges read from the server's state when scraped.
//! - [`fuzz`]: what the fuzz targets in `fuzz/` run on any bytes (a request
//!   decoded and checked as the servers do), also run by a unit test over
//!   the seed corpus on stable.
//!
//! The services live in their own crates: `services/cafe` (the café server),
//! `services/barista` (the barista backend) and `client` (the `cafe` CLI).

pub mod brewing;
pub mod codec;
pub mod convert;
pub mod deadline;
pub mod fuzz;
pub mod menu;
pub mod metrics;
pub mod order;
pub mod outcome;
pub mod propagation;
pub mod serving;
pub mod shutdown;
pub mod status;
pub mod telemetry;

/// The generated protobuf messages and gRPC clients and servers.
pub mod proto {
    /// Package `cafe.v1`: the `Cafe` and `Barista` services.
    #[allow(missing_docs, unreachable_pub, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("cafe.v1");
    }

    /// The encoded descriptors of every `.proto` file, served by reflection
    /// so tools such as grpcurl need no copy of the `.proto` files.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cafe_descriptor");
}
