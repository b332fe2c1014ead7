//! Flags shared by every command that works on many tenants, built-in or a plugin's: which tenants
//! (`--tenant`, `--all`, `--status`) and how (`--concurrency`, `--fail-fast`). Neither `--tenant`
//! nor `--all` means a picker on a terminal and a usage error elsewhere: never "all" by accident.

use clap::Args;

use super::{Console, UsageError};
use crate::migrate::fleet::FleetOptions;
use crate::{Tenancy, Tenant, TenantStatus};

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
    /// typed (`tenancy cache stats`), for the hint of a usage error; `console` asks the person
    /// to pick when they named none on a terminal.
    ///
    /// # Errors
    /// An unknown tenant or status, or a [`UsageError`] when no tenant was chosen.
    pub async fn resolve(&self, tenancy: &Tenancy, console: &dyn Console, command: &str) -> anyhow::Result<Vec<Tenant>> {
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
        if !console.is_interactive() {
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
        let picked = console.pick_tenants(candidates)?;
        if picked.is_empty() {
            return Err(UsageError::new("no tenant was chosen", "select tenants with space, then press enter").into());
        }
        Ok(picked)
    }
}

/// The id of `--concurrency`, whose help the CLI completes with the default this configuration
/// gives.
pub const CONCURRENCY: &str = "concurrency";

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
            None => format!("{} at once (the default: {})", self.get(tenancy), FleetOptions::default_concurrency_reason(tenancy.config())),
        }
    }
}

/// How to run an operation over the tenants.
#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub concurrency: ConcurrencyArg,
    /// Start no new tenant after the first one fails
    #[arg(long)]
    pub fail_fast: bool,
}

impl FleetArgs {
    /// The options, with the default concurrency filled in from the configuration.
    pub fn options(&self, tenancy: &Tenancy) -> FleetOptions {
        FleetOptions { concurrency: self.concurrency.get(tenancy), fail_fast: self.fail_fast, down_during: false, verify: false }
    }
}
