//! The docs are held to the code, so none of them rots.
//!
//! - **Flag references** (`docs/cli.md`, `docs/cafe-server.md`,
//!   `docs/baristas.md`) are generated from the three binaries' clap
//!   definitions with `clap-markdown`, between `<!-- BEGIN GENERATED -->`
//!   and `<!-- END GENERATED -->`. The test fails when what is committed
//!   differs; `UPDATE_DOCS=1 cargo test -p cafe-client --test it docs`
//!   rewrites the blocks (read the diff before committing it).
//! - **Commands**: every ` ```sh ` block in `README.md` and `docs/*.md` is
//!   run, line by line, offline. `cargo run … --bin cafe -- ARGS` and
//!   `cafe ARGS` run the real `cafe` binary; `cafe-server` and
//!   `cafe-barista` (with or without `cargo run`) start the real
//!   `Application`s in this process, with their command line parsed by
//!   their own clap definitions, and keep running for the rest of their
//!   block (in the docs, each has a terminal of its own, or ends in `&`);
//!   a café is waited for until its health is SERVING. A `cafe` line
//!   ending in `&` runs in the background beside the lines after it (a
//!   `stats --every` watching a rush), as a shell's job: `kill %N` stops
//!   the Nth `&` line of its block, and a background `cafe` no `kill`
//!   stopped must end by itself, successfully. Servers listen on
//!   port 0 instead of
//!   the documented port, and the addresses in later commands are rewritten
//!   to match; `--time-scale` is set to 0.005 (and the demo's to match), so
//!   a block runs in seconds, not minutes. A block that needs what a test
//!   has not got (Docker, grpcurl, a collector, this very test) is marked
//!   ` ```sh no-run ` in the markdown; any other command in a runnable block
//!   fails the test, so a new command is either run or explicitly marked.
//!
//! - **grpcurl**: `docs/grpcurl.md`'s outputs are a real run of grpcurl
//!   against the servers its first block starts, and must stay so but for
//!   ids, tokens and times ([`grpcurl`]).
//!
//! One module each: [`flags`], [`commands`], [`grpcurl`], and [`links`]
//! (every relative link between the docs leads to a file and a heading that
//! exist).

mod commands;
mod flags;
mod grpcurl;
mod links;

use std::path::{Path, PathBuf};

/// The workspace root (this crate is `client/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("client/ has a parent")
        .to_owned()
}

/// README.md and every page in docs/.
fn markdown_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}
