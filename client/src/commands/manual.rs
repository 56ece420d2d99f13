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

/// Prints the `cafe(1)` man page (roff) on stdout, or with `command` the
/// page of that command, `cafe-<command>(1)`, which `cafe(1)` refers to.
pub fn man(command: Option<&str>) -> Result<Finished, ClientError> {
    let mut cafe = Cli::command();
    // Building gives each subcommand its full names (`cafe-demo` for the
    // page's title, `cafe demo` for its synopsis).
    cafe.build();
    let page = match command {
        None => cafe,
        Some(name) => cafe.find_subcommand(name).cloned().ok_or_else(|| {
            ClientError::InvalidArgument(format!(
                "no command {name:?}: see `cafe --help` for the commands"
            ))
        })?,
    };
    let mut stdout = std::io::stdout().lock();
    clap_mangen::Man::new(page).render(&mut stdout)?;
    stdout.flush()?;
    Ok(Finished::Done)
}
