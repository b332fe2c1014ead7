//! One module per command. Each holds a clap `Args` type and a `run` that turns the arguments into a
//! core request, calls `tenancy-core`, and reports through [`crate::output::Output`].

pub mod cache;
pub mod completions;
pub mod db;
pub mod init;
pub mod selection;
pub mod tenant;

use anyhow::Context;
use tenancy_core::Config;

use crate::args::{Cli, Command};
use crate::exit::ExitStatus;
use crate::output::Output;
use crate::{App, AppContext};

/// Loads the configuration and runs the command.
pub async fn dispatch(app: &App, cli: Cli, out: &Output) -> anyhow::Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let config_file = cli.global.config.as_deref();
    match cli.command {
        Command::Completions(args) => completions::run(&args),
        Command::Init(args) => init::run(&args, config_file, &cwd, app, out).await,
        Command::Tenant(command) => tenant::run(command, &AppContext { out, config: Config::load(&cwd, config_file)?, app }).await,
        Command::Cache(command) => cache::run(command, &AppContext { out, config: Config::load(&cwd, config_file)?, app }).await,
        Command::Db(command) => db::run(command, &AppContext { out, config: Config::load(&cwd, config_file)?, app }).await,
    }
}
