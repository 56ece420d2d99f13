# syntax=docker/dockerfile:1
#
# One image with the café's three binaries: cafe-server, cafe-barista and the
# cafe CLI. docker-compose.yml picks which one each container runs (its
# `entrypoint`), so the Rust code is compiled once for all of them.
#
# Stages:
#   chef     the Rust toolchain plus cargo-chef
#   planner  reduces the workspace to a recipe: the manifests and the lock
#            file, nothing else, so the recipe only changes when they do
#   builder  builds every dependency from the recipe (a layer Docker keeps
#            until Cargo.toml or Cargo.lock change), then our own crates
#   runtime  Debian slim with the three binaries, running as a non-root user,
#            and a volume for the café's orders (/var/lib/cafe)
#
# No protoc is installed: build.rs compiles proto/ with protox, in Rust.
# `cargo chef cook` swaps build.rs for an empty `fn main() {}` (as it does
# every lib.rs and main.rs), so the dependency layer needs neither build.rs
# nor proto/: the real ones arrive with `COPY . .` and cook deletes the dummy
# build script's artefacts, so ours runs then.
#
# Nothing here names an architecture: the rust and debian images are
# multi-platform, so `docker buildx build --platform linux/amd64,linux/arm64 .`
# builds both.

# The builder's Rust: at least the workspace's rust-version (1.88, which every
# dependency in Cargo.lock accepts as well; clippy's incompatible_msrv lint
# keeps our code off newer std APIs). Bookworm, like the runtime, so the
# binaries link against the same glibc they run with.
ARG RUST_IMAGE=rust:1.91-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS chef
# The servers link jemalloc (tikv-jemallocator), whose build runs `make`;
# the slim image has a C compiler but may lack make.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
# Built from source with its own lock file, so the same cargo-chef every time.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Every dependency, built once per change of Cargo.toml or Cargo.lock.
RUN cargo chef cook --release --locked --recipe-path recipe.json
# Our sources: only the workspace's own crates compile from here on.
COPY . .
RUN cargo build --release --locked --bin cafe-server --bin cafe-barista --bin cafe

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="rust-grpc-cafe" \
      org.opencontainers.image.description="A gRPC café in Rust: cafe-server, cafe-barista and the cafe CLI" \
      org.opencontainers.image.licenses="MIT"
# A user of our own, with no home and no shell: the servers need neither.
RUN groupadd --system --gid 10001 cafe \
    && useradd --system --uid 10001 --gid cafe --no-create-home --shell /usr/sbin/nologin cafe
COPY --from=builder /app/target/release/cafe-server /app/target/release/cafe-barista /app/target/release/cafe /usr/local/bin/
# The café's data directory (its SQLite order store), owned by the user that
# runs it: a volume mounted here starts with this ownership.
RUN mkdir -p /var/lib/cafe && chown 10001:10001 /var/lib/cafe
VOLUME /var/lib/cafe
USER 10001:10001
# Inside a container a server must listen on every interface to be reachable
# from the host or another container; 127.0.0.1 (the binaries' default) is
# the container's own loopback.
# The café keeps its orders under /var/lib/cafe (the working directory, /,
# is not the user's to write).
ENV CAFE_LISTEN=0.0.0.0:50051 \
    BARISTA_LISTEN=0.0.0.0:50061 \
    CAFE_DATA_DIR=/var/lib/cafe
EXPOSE 50051 50061
# No HEALTHCHECK here: one image runs the café, the baristas and the CLI, so
# each service in docker-compose.yml has its own (`cafe health`).
ENTRYPOINT ["cafe-server"]
