//! Subcommands and plugins: the traits a crate implements to add commands to an application's
//! `tenancy` binary, and what those commands are given.
//!
//! A [`Plugin`] is linked into the binary and registered with the CLI's `App` builder. Its
//! [`Command`]s join the built-in ones in the clap tree (so they show in `--help` and in shell
//! completions); it may also add [`ProvisioningStep`]s to tenant creation and [`TenantMigrator`]s,
//! each with its own tracking table, to every tenant database.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenancy_core::command::{AppContext, Command, ExitStatus, Plugin};
//!
//! struct Stats;
//!
//! #[async_trait::async_trait]
//! impl Command for Stats {
//!     fn definition(&self) -> clap::Command {
//!         clap::Command::new("stats").about("Count tenants")
//!     }
//!
//!     async fn run(&self, app: &dyn AppContext, _args: &clap::ArgMatches) -> anyhow::Result<ExitStatus> {
//!         let tenancy = app.open_tenancy().await?;
//!         let tenants = tenancy.registry().list(None).await?;
//!         app.console().data(&format!("{} tenants", tenants.len()));
//!         tenancy.close().await;
//!         Ok(ExitStatus::Success)
//!     }
//! }
//!
//! struct StatsPlugin;
//!
//! impl Plugin for StatsPlugin {
//!     fn name(&self) -> &str { "stats" }
//!     fn version(&self) -> &str { env!("CARGO_PKG_VERSION") }
//!     fn commands(&self) -> Vec<Arc<dyn Command>> { vec![Arc::new(Stats)] }
//! }
//! ```

pub mod format;
pub mod selection;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;

use crate::migrate::TenantMigrator;
use crate::provisioning::{ProvisioningStep, TenantHook};
use crate::{Config, ConfigError, Seeder, Tenancy, Tenant, TenantId};

/// How a command ends, and so the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked: 0.
    Success,
    /// An operation failed (for at least one tenant): 1.
    Failure,
    /// Bad usage or bad input; nothing was changed: 2.
    Usage,
    /// Another program's code, passed through (an external `tenancy-foo` command's).
    Code(u8),
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Code(code) => code,
        })
    }
}

/// A mistake in how a command was called that its parser cannot see (a missing flag off a
/// terminal, a bad combination). Returned as an error, it makes the process exit with 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    message: String,
    hint: Option<String>,
}

impl UsageError {
    /// A usage error with a hint saying what to type instead.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { message: message.into(), hint: Some(hint.into()) }
    }

    /// What to type instead.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

/// Where a command writes: the CLI's terminal, pipe or JSON output.
///
/// Data goes to stdout; status lines and warnings go to stderr, and are silent with `--json`
/// (warnings become JSON events) or `--quiet`.
pub trait Console: Send + Sync {
    /// A status line: `verb` says what happened (`Created`, `Migrated`), `message` to what.
    fn status(&self, verb: &str, message: &str);
    /// A status line for something that failed; shown even with `--quiet`.
    fn failure(&self, verb: &str, message: &str);
    /// A warning.
    fn warn(&self, message: &str);
    /// A line of data on stdout.
    fn data(&self, line: &str);
    /// One JSON object on its own line on stdout.
    fn json(&self, value: &serde_json::Value);
    /// Whether the user asked for `--json`.
    fn is_json(&self) -> bool;
    /// Whether a person can answer questions (stdin and stderr are terminals).
    fn is_interactive(&self) -> bool {
        false
    }
    /// Asks a yes/no question whose default is no. Ask only when [`Console::is_interactive`];
    /// elsewhere the answer is no.
    ///
    /// # Errors
    /// When the answer cannot be read.
    fn confirm(&self, _question: &str) -> anyhow::Result<bool> {
        Ok(false)
    }
    /// Lets a person choose among `candidates`; none chosen when nobody can answer.
    ///
    /// # Errors
    /// When the answer cannot be read.
    fn pick_tenants(&self, _candidates: Vec<Tenant>) -> anyhow::Result<Vec<Tenant>> {
        Ok(Vec::new())
    }
    /// How a run over `total` tenants is shown while it runs: on a terminal a bar and a live line
    /// per tenant in flight, piped a line per tenant, nothing with `--json` (the command writes
    /// its own events). The default prints a status line per finished tenant.
    fn tenant_progress(&self, _total: usize) -> Box<dyn TenantProgress + '_> {
        Box::new(LineProgress(self))
    }
}

/// A run over many tenants as a person watches it ([`Console::tenant_progress`]). Every method is
/// called from any worker, in any order across tenants.
pub trait TenantProgress: Send + Sync {
    /// Work on `tenant` began; `doing` says what (`dumping`).
    fn started(&self, tenant: &Tenant, doing: &str);
    /// How far the tenant's work is: `bytes` so far, and what is happening now.
    fn advanced(&self, tenant: &Tenant, doing: &str, bytes: u64);
    /// The tenant is done; `verb` and `message` make its line (`Backed up`, `acme: 12 MiB in 1.2s`).
    fn finished(&self, tenant: &Tenant, verb: &str, message: &str);
    /// The tenant failed with `error`.
    fn failed(&self, tenant: &Tenant, error: &str);
    /// Clears whatever is drawn; call before the summary.
    fn finish(&self) {}
}

/// The default [`TenantProgress`]: a status line per finished or failed tenant.
struct LineProgress<'a, C: ?Sized>(&'a C);

impl<C: Console + ?Sized> TenantProgress for LineProgress<'_, C> {
    fn started(&self, _tenant: &Tenant, _doing: &str) {}

    fn advanced(&self, _tenant: &Tenant, _doing: &str, _bytes: u64) {}

    fn finished(&self, _tenant: &Tenant, verb: &str, message: &str) {
        self.0.status(verb, message);
    }

    fn failed(&self, tenant: &Tenant, error: &str) {
        self.0.failure("Failed", &format!("{tenant}: {error}"));
    }
}

/// What the application gives a command: its configuration, its output, and the means to open
/// the tenancy with the application's migrators, seeders and plugins.
#[async_trait]
pub trait AppContext: Send + Sync {
    /// The configuration, loaded and checked.
    fn config(&self) -> &Config;
    /// Where to write.
    fn console(&self) -> &dyn Console;
    /// Opens the registry and the database managers (migrating the registry if needed). Close it
    /// with [`Tenancy::close`] when done, so pools shut down before the process exits.
    async fn open_tenancy(&self) -> anyhow::Result<Tenancy>;
    /// The application's seeders, the default first.
    fn seeders(&self) -> &[Arc<dyn Seeder>];
    /// What the linked plugins report about tenants ([`Plugin::tenant_facts`]).
    fn tenant_facts(&self) -> Vec<Arc<dyn TenantFacts>> {
        Vec::new()
    }
}

/// A subcommand of the application's binary.
#[async_trait]
pub trait Command: Send + Sync {
    /// Its clap definition; the command's name is the subcommand's name.
    fn definition(&self) -> clap::Command;

    /// Runs with the arguments clap parsed against [`Command::definition`]. An error is printed
    /// with its causes; it exits with 2 if a [`UsageError`] (or another bad-input error of this
    /// crate) is among them, else with 1.
    async fn run(&self, app: &dyn AppContext, args: &clap::ArgMatches) -> anyhow::Result<ExitStatus>;
}

/// A set of commands, and optionally steps and migrations, added to an application as a unit.
pub trait Plugin: Send + Sync {
    /// Its name, for `tenancy plugin list`.
    fn name(&self) -> &str;
    /// Its version.
    fn version(&self) -> &str;
    /// The subcommands it adds.
    fn commands(&self) -> Vec<Arc<dyn Command>>;
    /// Steps added to tenant creation, before the tenant is marked active.
    fn provisioning_steps(&self) -> Vec<Arc<dyn ProvisioningStep>> {
        Vec::new()
    }
    /// Migrators run on every tenant database after the application's, each with its own
    /// tracking table.
    fn migrators(&self) -> Vec<Arc<dyn TenantMigrator>> {
        Vec::new()
    }
    /// Hooks run when a tenant is deleted or loses a domain.
    fn tenant_hooks(&self) -> Vec<Arc<dyn TenantHook>> {
        Vec::new()
    }
    /// Switches it adds to `tenant create` and `tenant delete`; those given reach its steps in
    /// [`crate::provisioning::TenantRequest::flags`] and its hooks in
    /// [`crate::provisioning::DeleteOptions::flags`].
    fn tenant_flags(&self) -> Vec<TenantFlag> {
        Vec::new()
    }
    /// The top-level configuration section it owns (`"homepage"` for `[homepage]`), read with
    /// [`Config::section`]. Without it a `tenancy.toml` holding the section is refused as unknown.
    fn config_section(&self) -> Option<&str> {
        None
    }
    /// Its section as `tenancy init` writes it (the defaults, explained in comments): appended to
    /// [`Config::TEMPLATE`] in the file `init` makes.
    fn config_template(&self) -> Option<&str> {
        None
    }
    /// Checks its section once the configuration is loaded, so a bad value is reported (naming
    /// the key, as tenancy's own sections are) before any command runs.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`], with the origin from [`Config::origin_of`].
    fn check_config(&self, _config: &Config) -> Result<(), ConfigError> {
        Ok(())
    }
    /// What copies a tenant's database to another server for `tenancy tenant move` (the backup
    /// plugin's); the first plugin that has one provides it.
    fn tenant_copier(&self) -> Option<Arc<dyn crate::moves::TenantCopier>> {
        None
    }
    /// Figures it keeps about tenants, shown beside the monitor's own (`monitor stats`).
    fn tenant_facts(&self) -> Vec<Arc<dyn TenantFacts>> {
        Vec::new()
    }
    /// Routes it adds to `tenancy serve` (and to any application serving
    /// [`crate::web::Routes::with_plugin`]).
    ///
    /// # Errors
    /// When they cannot be built (a bad configuration value); the server does not start.
    #[cfg(feature = "web")]
    fn web_routes(&self, _tenancy: &Arc<Tenancy>) -> anyhow::Result<crate::web::PluginRoutes> {
        Ok(crate::web::PluginRoutes::default())
    }
}

/// Figures a plugin keeps about tenants (the backup plugin: how many backups, the newest), for
/// commands that report on tenants, such as `monitor stats`, to show beside their own.
#[async_trait]
pub trait TenantFacts: Send + Sync {
    /// The figure's name, a column heading and JSON key: `backups`.
    fn name(&self) -> &str;
    /// The fact about each of `tenants` that has one.
    ///
    /// # Errors
    /// When the figures cannot be read at all; a tenant without them is simply left out.
    async fn collect(&self, tenancy: &Tenancy, tenants: &[Tenant]) -> anyhow::Result<HashMap<TenantId, Fact>>;
}

/// One tenant's figure from [`TenantFacts`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fact {
    /// For a person: `3, newest 2h ago`.
    pub text: String,
    /// For a machine.
    pub value: serde_json::Value,
}

/// A switch a plugin adds to a tenant command, such as `tenant create --with-homepage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantFlag {
    /// The command it belongs to.
    pub command: TenantCommand,
    /// The long name, without dashes: `with-homepage`.
    pub name: &'static str,
    /// Its line in `--help`.
    pub help: &'static str,
}

/// The tenant commands plugins may add switches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantCommand {
    /// `tenant create`.
    Create,
    /// `tenant delete`.
    Delete,
}
