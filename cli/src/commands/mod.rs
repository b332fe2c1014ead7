//! One module per command. Each holds a clap `Args` type and a `run` that turns the arguments into a
//! core request, calls `tenancy-core`, and reports through [`crate::output::Output`].

pub mod cache;
pub mod completions;
pub mod db;
pub mod doctor;
pub mod init;
pub mod plugin;
pub mod queue;
pub mod run;
pub mod selection;
pub mod serve;
pub mod server;
pub mod tenant;

use std::path::Path;

use clap::FromArgMatches;
use tenancy_core::{Config, ConfigError};

use crate::args::{Cli, Command};
use crate::exit::ExitStatus;
use crate::extensions::{self, Extensions, Handler};
use crate::output::Output;
use crate::{App, CliContext};

/// Everything a run of the tool starts from.
pub struct Invocation<'a> {
    /// The application.
    pub app: &'a App,
    /// The current directory.
    pub cwd: &'a Path,
    /// `--config`, if given.
    pub config_file: Option<&'a Path>,
    /// The configuration, or why it could not be read: reported by the commands that need it.
    pub config: Result<Config, ConfigError>,
    /// Plugins and the commands they add.
    pub extensions: &'a Extensions,
    /// The arguments after an extension's command name.
    pub extension_args: Vec<String>,
    /// The terminal.
    pub out: &'a Output,
}

impl<'a> Invocation<'a> {
    fn context(self) -> Result<CliContext<'a>, ConfigError> {
        Ok(CliContext { out: self.out, config: self.config?, app: self.app, extensions: self.extensions, tenant_flags: Default::default() })
    }
}

/// Runs the command `matches` chose: an extension's, or a core one.
pub async fn dispatch(mut invocation: Invocation<'_>, matches: &clap::ArgMatches) -> anyhow::Result<ExitStatus> {
    if let Some((name, sub_matches)) = matches.subcommand()
        && let Some(handler) = invocation.extensions.handler(name)
    {
        return match handler {
            Handler::BuiltIn(command) => command.run(&invocation.context()?, sub_matches).await,
            Handler::Dynamic { plugin, spec } => {
                let args = std::mem::take(&mut invocation.extension_args);
                extensions::dynamic::run(plugin, spec, args, &invocation.context()?).await
            }
            Handler::External(program) => {
                extensions::external::run(program, &invocation.extension_args, invocation.config.as_ref().ok(), invocation.out)
            }
        };
    }
    let cli = Cli::from_arg_matches(matches)?;
    match cli.command {
        Command::Completions(args) => completions::run(&args, invocation.extensions, invocation.out),
        Command::Init(args) => {
            init::run(&args, invocation.config_file, invocation.cwd, invocation.app, invocation.extensions, invocation.out).await
        }
        Command::Tenant(command) => {
            let flags = invocation.extensions.tenant_flags_given(matches);
            let mut ctx = invocation.context()?;
            ctx.tenant_flags = flags;
            tenant::run(command, &ctx).await
        }
        Command::Cache(command) => cache::run(command, &invocation.context()?).await,
        Command::Db(command) => db::run(command, &invocation.context()?).await,
        Command::Plugin(command) => plugin::run(&command, invocation.extensions, invocation.out),
        Command::Doctor(args) => doctor::run(&args, invocation).await,
        Command::Serve(args) => serve::run(&args, &invocation.context()?).await,
        Command::Queue(command) => queue::run(command, &invocation.context()?).await,
        Command::Run(args) => run::run(args, &invocation.context()?).await,
        Command::Server(command) => server::run(command, &invocation.context()?).await,
    }
}
