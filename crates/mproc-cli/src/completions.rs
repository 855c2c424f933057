//! `mproc completions SHELL`: static completion scripts from the clap model.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Writes the completion script for `shell` to stdout.
pub(crate) fn run(shell: Shell) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mproc", &mut buf);
    crate::ctx::out_bytes(&buf)?;
    Ok(crate::exit::OK)
}
