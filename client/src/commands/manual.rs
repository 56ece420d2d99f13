//! `cafe completions` and `cafe man`: the shell completions and the man
//! page, generated from the same clap definitions that parse the command
//! line, so they cannot drift from it.

use std::io::Write;

use clap::CommandFactory;

use super::Finished;
use crate::{cli::Cli, error::ClientError};

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<Finished, ClientError> {
    let mut command = Cli::command();
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "cafe", &mut stdout);
    stdout.flush()?;
    Ok(Finished::Done)
}

/// Prints the `cafe(1)` man page (roff) on stdout.
pub fn man() -> Result<Finished, ClientError> {
    let mut stdout = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut stdout)?;
    stdout.flush()?;
    Ok(Finished::Done)
}
