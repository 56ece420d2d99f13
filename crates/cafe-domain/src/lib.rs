//! What a café is: its gRPC contract, its drinks and orders, how a barista
//! brews, and the one translation between the domain and the wire. The
//! café server, the barista backend and the CLI all speak through it; it
//! knows nothing of how they are served (that is `grpc-serving`).
//!
//! # Layout
//! - [`proto`]: the gRPC contract, generated from the workspace's
//!   `proto/cafe/v1/*.proto` at build time (see `build.rs`), and the
//!   descriptor set for reflection.
//! - [`codec`]: how those messages go on the wire: prost's codec with
//!   call buffers sized for the café's small messages.
//! - [`menu`]: the drinks, their brew times and sizes, as plain Rust types.
//! - [`order`]: what an order is and how it moves from queued to ready.
//! - [`brewing`]: how a barista spends the brew time (async, or the blocking
//!   anti-pattern), and the baristas' names.
//! - [`faults`]: faults to switch on (a slow or flaky barista, a slow
//!   store, a leak), parsed from `--faults` and re-read on SIGHUP.
//! - [`convert`]: the one translation layer between the domain types and
//!   their protobuf messages.
//! - [`status`]: a bad request's field violations as `INVALID_ARGUMENT`
//!   with `google.rpc.BadRequest` details, the same from every server.
//! - [`fuzz`]: what the fuzz targets in `fuzz/` run on any bytes (a request
//!   decoded and checked as the servers do), also run by a unit test over
//!   the seed corpus on stable.

pub mod brewing;
pub mod codec;
pub mod convert;
pub mod faults;
pub mod fuzz;
pub mod menu;
pub mod order;
pub mod status;

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
