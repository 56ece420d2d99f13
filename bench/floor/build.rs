//! Generates the floor's own `cafe.v1.Cafe` server, with tonic's default
//! codec.
//!
//! The messages are `cafe-domain`'s (`cafe_domain::proto::v1`, through
//! `extern_path`); only the service (the trait and the server that routes
//! calls to it) is generated here. The café's generated code uses its own
//! codec, with small call buffers (`cafe_domain::codec`); the floor measures
//! tonic as it comes, so it keeps `tonic_prost::ProstCodec` and its
//! default 8 KiB buffers.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../..");
    let proto = root.join("proto/cafe/v1/cafe.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    let descriptors = protox::compile([&proto], [root.join("proto")])?;
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(".cafe.v1", "::cafe_domain::proto::v1")
        .compile_fds(descriptors)?;
    Ok(())
}
