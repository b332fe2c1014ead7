//! The command line, as clap types. Each subcommand's arguments live with its command module; this
//! file only assembles the tree and the flags every command shares.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::{cache, completions, db, doctor, init, plugin, queue, run, serve, server, tenant};

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
#[derive(Debug, Default, Args)]
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
    /// Say more: -v shows what tenancy is doing, -vv debug detail (RUST_LOG overrides both)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log events (warnings, and more with -v) are written to stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (`warning: …`), with the output's own modes (`--json` turns warnings into events)
    #[default]
    Text,
    /// One JSON object per event on stderr, with its fields and its spans (`tenant.id`), for a log collector
    Json,
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
    /// List plugins: built-in, loaded from libraries, and `tenancy-*` programs on PATH
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Check the registry, database servers, plugins and tenant migrations
    Doctor(doctor::DoctorArgs),
    /// Serve tenants over HTTP: each on its own domains, inside its own context
    Serve(serve::ServeArgs),
    /// Run, inspect, retry and clear queued jobs; each runs in its own tenant's context
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Run a program once per tenant, with its DATABASE_URL and TENANCY_TENANT_* in the environment
    Run(run::RunArgs),
    /// List the database servers, and drain or open them to new tenants
    #[command(subcommand)]
    Server(server::ServerCommand),
    /// Print a shell completion script
    Completions(completions::CompletionsArgs),
}

/// The value of `--config FILE` or `--config=FILE`, read before clap parses anything: the file
/// says where plugins are, and plugins add commands to the parser.
pub fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            return None;
        }
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_flag_is_found_before_parsing() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(config_flag(&args(&["tenancy", "tenant", "list", "--config", "a.toml"])), Some("a.toml".into()));
        assert_eq!(config_flag(&args(&["tenancy", "--config=b.toml", "doctor"])), Some("b.toml".into()));
        assert_eq!(config_flag(&args(&["tenancy", "hello", "--", "--config", "c.toml"])), None);
        assert_eq!(config_flag(&args(&["tenancy", "doctor"])), None);
    }
}
