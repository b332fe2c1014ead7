//! `tenancy completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.

use clap::Args;
use clap_complete::Shell;

use crate::exit::ExitStatus;
use crate::extensions::Extensions;
use crate::output::Output;

/// Arguments of `tenancy completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Completes plugin commands too: the script is made from the same tree `tenancy` parses with.
pub fn run(args: &CompletionsArgs, extensions: &Extensions, out: &Output) -> anyhow::Result<ExitStatus> {
    let mut command = extensions.command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "tenancy", &mut script);
    out.raw(&script);
    Ok(ExitStatus::Success)
}
