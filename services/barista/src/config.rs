//! The barista backend's configuration: the flags every server has, each
//! with an environment variable (`--listen` or `BARISTA_LISTEN`), plus
//! `--name` for telling replicas apart and `--baristas`.
//!
//! The shared flags are [`grpc_serving::ServerFlags`], flattened in
//! with the `BARISTA_` prefix ([`BaristaEnv`]).
//!
//! Tests build a [`Config`] directly (`Config::default()` and struct update
//! syntax) instead of setting environment variables.

use std::path::PathBuf;

use cafe_domain::{
    brewing::BrewMode,
    faults::{self, FaultSpec},
    menu::TimeScale,
};
use clap::Parser;
use grpc_serving::{self as serving, ServerEnv, ServerFlags};

/// `cafe-barista`: a station of baristas that brews drinks for the café.
#[derive(Debug, Clone, Parser)]
#[command(name = "cafe-barista", version, about, long_about = None)]
pub struct Config {
    /// The flags every server has.
    #[command(flatten)]
    pub server: ServerFlags<BaristaEnv>,

    /// Multiplier on every brew time: 1 is real time, 0.05 makes a 40 s
    /// latte take 2 s.
    #[arg(long, env = "BARISTA_TIME_SCALE", default_value = "1")]
    pub time_scale: TimeScale,

    /// How baristas wait while a drink brews: `async` awaits a timer;
    /// `blocking` sleeps the runtime's worker thread (the anti-pattern).
    #[arg(long, env = "BARISTA_BREW_MODE", value_enum, default_value_t = BrewMode::Async)]
    pub brew_mode: BrewMode,

    /// This replica's name, put before each barista's own name on the board
    /// (`<name>/Ana`) [default: the host name, so compose replicas differ].
    #[arg(long, env = "BARISTA_NAME", default_value_t = default_name(),
          hide_default_value = true, value_parser = parse_name)]
    pub name: String,

    /// How many baristas brew at the same time. A drink past them is turned
    /// away at once (RESOURCE_EXHAUSTED): it waits in the café's line, not
    /// here.
    #[arg(long, env = "BARISTA_BARISTAS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub baristas: u16,

    /// Faults to switch on, to find again (docs/debugging.md), e.g.
    /// `slow-barista=0.2x10,flaky-barista=0.1,blocking-barista,leak=4KiB`:
    /// a fraction of brews FACTOR times slower, a fraction failing half-way
    /// (INTERNAL: the café brews it again), brews blocking their
    /// thread, each brew keeping memory never freed (a replica has no
    /// store: no slow-store). `@NAME` after a
    /// barista's fault limits it to one barista (`slow-barista=0.5x4@Ana`).
    #[arg(
        long,
        env = "BARISTA_FAULTS",
        default_value = "none",
        value_name = "SPEC"
    )]
    pub faults: FaultSpec,

    /// A file holding the faults (as --faults; one per line or
    /// comma-separated), read at start and again on each SIGHUP: a running
    /// replica is broken and mended without a restart [default: none].
    #[arg(long, env = "BARISTA_FAULTS_FILE", value_name = "FILE",
          conflicts_with = "faults", value_parser = faults::parse_file)]
    pub faults_file: Option<PathBuf>,
}

/// The barista backend's names and words for the flags every server has.
#[derive(Debug, Clone)]
pub enum BaristaEnv {}

impl ServerEnv for BaristaEnv {
    const SHUTDOWN_GRACE_HELP: &'static str = "On SIGINT or SIGTERM, how long the drinks in \
        hand may take to finish before the process exits anyway (e.g. 500ms, 10s)";
    const PREFIX: &'static str = "BARISTA";
    const LISTEN: &'static str = "127.0.0.1:50061";
}

impl Default for Config {
    /// The flags' defaults: what the binary runs with when given no flags
    /// and no variables (see [`serving::flags::defaults`]).
    fn default() -> Self {
        serving::flags::defaults()
    }
}

/// The host name (a container's name under Docker or Kubernetes), or
/// `barista` if it cannot be read.
pub fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .and_then(|name| parse_name(&name).ok())
        .unwrap_or_else(|| "barista".to_owned())
}

/// A replica name is shown on the board: 1 to 64 characters, no `/` (it
/// separates the replica from the barista) and no control characters.
fn parse_name(name: &str) -> Result<String, String> {
    let chars = name.chars().count();
    if chars == 0 || chars > 64 || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "{name:?} is not a replica name: use 1 to 64 characters without '/', e.g. barista-1"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused() {
        // The shared flags' bad values are refused in `grpc_serving::flags`.
        cafe_testkit::assert_refused::<Config>(&["--baristas 0", "--name a/b", "--name="]);
    }
}
