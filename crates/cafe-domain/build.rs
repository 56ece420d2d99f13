//! Compiles the workspace's `proto/` into Rust at build time.
//!
//! `protox` parses the `.proto` files in pure Rust, so no system `protoc` is
//! needed: a fresh machine with only Rust installed can build the café. The
//! file descriptor set is kept too: server reflection serves it, so grpcurl
//! can `list` and `describe` without a copy of the `.proto` files.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../proto/cafe/v1/cafe.proto",
        "../../proto/cafe/v1/barista.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }

    let descriptors = protox::compile(protos, ["../../proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("cafe_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&descriptors),
    )?;

    // Every generated client and server encodes with the café's codec:
    // prost's, with call buffers sized for our messages (see `codec.rs`).
    tonic_prost_build::configure()
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
