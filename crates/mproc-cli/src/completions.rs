//! `mproc completions SHELL`: static completion scripts from the clap model.

use clap::Args;
use clap_complete::Shell;

/// `mproc completions SHELL`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub(crate) shell: Shell,
}

/// Writes the completion script for `args.shell` to stdout; `cli` is the
/// whole command line's clap model (built by the caller, so that this
/// command does not name the module that assembles it).
pub(crate) fn run(args: &CompletionsArgs, mut cli: clap::Command) -> anyhow::Result<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "mproc", &mut buf);
    crate::ctx::out_bytes(&buf)?;
    Ok(crate::exit::OK)
}
