//! Flags shared by every command that works on many tenants: which tenants (`--tenant`, `--all`,
//! `--status`) and how (`--concurrency`, `--fail-fast`). Neither `--tenant` nor `--all` means a
//! picker on a terminal and a usage error elsewhere: never "all" by accident.

use clap::Args;
use tenancy_core::migrate::fleet::FleetOptions;
use tenancy_core::{Config, Tenancy, Tenant, TenantStatus};

use crate::exit::UsageError;
use crate::output::Output;

/// Which tenants.
#[derive(Debug, Args)]
pub struct TenantSelection {
    /// A tenant (id, id prefix, domain or name); repeat for more
    #[arg(long = "tenant", short = 't', value_name = "TENANT")]
    pub tenants: Vec<String>,
    /// Every tenant with the status of --status
    #[arg(long, conflicts_with = "tenants")]
    pub all: bool,
    /// With --all or the picker: only tenants with this status
    #[arg(long, default_value = "active", value_parser = ["creating", "active", "inactive", "suspended"])]
    pub status: String,
}

impl TenantSelection {
    /// Whether exactly one tenant was named.
    pub fn is_single(&self) -> bool {
        self.tenants.len() == 1
    }

    /// The tenants to work on, in registry order (or in the order named). `command` is what was
    /// typed (`tenancy cache stats`), for the hint of a usage error.
    pub async fn resolve(&self, tenancy: &Tenancy, out: &Output, command: &str) -> anyhow::Result<Vec<Tenant>> {
        let mut chosen: Vec<Tenant> = Vec::new();
        for reference in &self.tenants {
            let tenant = tenancy.registry().resolve(reference).await?;
            if !chosen.iter().any(|t| t.id == tenant.id) {
                chosen.push(tenant);
            }
        }
        if !chosen.is_empty() {
            return Ok(chosen);
        }
        let status: TenantStatus = self.status.parse()?;
        let candidates = tenancy.registry().list(Some(status)).await?;
        if self.all {
            return Ok(candidates);
        }
        if !out.is_interactive() {
            return Err(UsageError::new(
                "no tenant given: name tenants with --tenant, or pass --all",
                format!("{command} --all  (or --tenant acme.example.com)"),
            )
            .into());
        }
        if candidates.is_empty() {
            return Err(UsageError::new(
                format!("there is no {status} tenant to choose from"),
                "create one with `tenancy tenant create`, or pick another --status",
            )
            .into());
        }
        let picked = crate::prompt::pick_tenants(candidates)?;
        if picked.is_empty() {
            return Err(UsageError::new("no tenant was chosen", "select tenants with space, then press enter").into());
        }
        Ok(picked)
    }
}

/// The id of `--concurrency`, whose help [`show_default_concurrency`] completes.
const CONCURRENCY: &str = "concurrency";

/// How many tenants at once.
#[derive(Debug, Args)]
pub struct ConcurrencyArg {
    /// Tenants worked on at once [default: as many as the connection budget has room for]
    #[arg(long = CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,
}

impl ConcurrencyArg {
    /// The value given, or the default the configuration allows.
    pub fn get(&self, tenancy: &Tenancy) -> usize {
        self.concurrency.map_or_else(|| FleetOptions::default_concurrency(tenancy.config()), usize::from)
    }

    /// `12 at once (the default: …)` or `4 at once`, for the first line of a run.
    pub fn describe(&self, tenancy: &Tenancy) -> String {
        match self.concurrency {
            Some(n) => format!("{n} at once"),
            None => format!("{} at once (the default: {})", self.get(tenancy), default_concurrency_reason(tenancy.config())),
        }
    }
}

/// Where the default concurrency comes from: `connection_budget 64 / pool_size 5`, and
/// `max_open_pools` when that is lower.
fn default_concurrency_reason(config: &Config) -> String {
    let db = &config.tenant_database;
    let by_budget = db.connection_budget / db.pool_size.max(1);
    let mut reason = format!("connection_budget {} / pool_size {}", db.connection_budget, db.pool_size);
    if by_budget > db.max_open_pools {
        reason.push_str(&format!(", at most max_open_pools {}", db.max_open_pools));
    }
    reason
}

/// Writes the default `--concurrency` this configuration gives into the help of every command
/// that has the flag: `[default: 12 (connection_budget 64 / pool_size 5)]`.
pub fn show_default_concurrency(command: clap::Command, config: &Config) -> clap::Command {
    let help = format!(
        "Tenants worked on at once [default: {} ({})]",
        FleetOptions::default_concurrency(config),
        default_concurrency_reason(config)
    );
    with_concurrency_help(command, &help)
}

fn with_concurrency_help(mut command: clap::Command, help: &str) -> clap::Command {
    if command.get_arguments().any(|arg| arg.get_id() == CONCURRENCY) {
        command = command.mut_arg(CONCURRENCY, |arg| arg.help(help.to_owned()));
    }
    let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| with_concurrency_help(sub, help));
    }
    command
}

/// How to run an operation over the tenants.
#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
    /// Start no new tenant after the first one fails
    #[arg(long)]
    pub fail_fast: bool,
}

impl FleetArgs {
    /// The options, with the default concurrency filled in from the configuration.
    pub fn options(&self, tenancy: &Tenancy) -> FleetOptions {
        FleetOptions { concurrency: self.concurrency.get(tenancy), fail_fast: self.fail_fast }
    }
}
