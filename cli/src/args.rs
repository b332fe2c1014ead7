//! The command line, as clap types. Each subcommand's arguments live with its command module; this
//! file only assembles the tree and the flags every command shares.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::{cache, completions, db, init, tenant};

/// Database-per-tenant multi-tenancy: create, migrate and manage every tenant's database.
#[derive(Debug, Parser)]
#[command(name = "tenancy", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Read this configuration file instead of looking for `tenancy.toml`
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable output: one JSON object per line on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only data and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// No colour (the NO_COLOR variable does the same)
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented `tenancy.toml` and create the tenant registry
    Init(init::InitArgs),
    /// Create, list, show, change and delete tenants
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Migrate, roll back, inspect and seed tenant databases
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Clear and measure tenants' caches
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Print a shell completion script
    Completions(completions::CompletionsArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
