//! `tenancy db rollback|reset|refresh|fresh`: going back. `reset`, `refresh` and `fresh` destroy data,
//! so they ask on a terminal and need `--force` elsewhere.

use clap::Args;
use tenancy_core::migrate::fleet::Operation;

use super::{DownDuringArg, run_over};
use crate::CliContext;
use crate::commands::selection::{FleetArgs, TenantSelection};
use crate::exit::{ExitStatus, UsageError};
use crate::prompt;

/// Arguments of `tenancy db rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub down: DownDuringArg,
    /// How many migrations to roll back, newest first
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub step: u32,
}

/// Arguments of `tenancy db reset|refresh|fresh`.
#[derive(Debug, Args)]
pub struct DestructiveArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub down: DownDuringArg,
    /// Do not ask for confirmation (required when not on a terminal)
    #[arg(long, short)]
    pub force: bool,
}

/// The operations that destroy data.
#[derive(Debug, Clone, Copy)]
pub enum Destructive {
    Reset,
    Refresh,
    Fresh,
}

impl Destructive {
    fn name(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Refresh => "refresh",
            Self::Fresh => "fresh",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Reset => "roll back every migration (dropping their tables and data)",
            Self::Refresh => "roll back every migration and apply them again (all data is lost)",
            Self::Fresh => "drop the whole database and migrate it again (all data is lost)",
        }
    }
}

pub async fn rollback(args: RollbackArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    ctx.with_tenancy(async |tenancy| {
        let tenants = args.selection.resolve(tenancy, ctx.out, "tenancy db rollback").await?;
        let operation = Operation::Rollback { steps: args.step as usize };
        Ok(run_over(tenancy, ctx.out, tenants, operation, &args.fleet, args.down.options(&args.fleet, tenancy), "Rolled back").await)
    })
    .await
}

pub async fn destructive(args: DestructiveArgs, kind: Destructive, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    ctx.with_tenancy(async |tenancy| {
        let tenants = args.selection.resolve(tenancy, out, &format!("tenancy db {}", kind.name())).await?;
        if !args.force {
            if !out.is_interactive() {
                return Err(UsageError::new(
                    format!("`db {}` would {}; it needs --force when not on a terminal", kind.name(), kind.what()),
                    format!("tenancy db {} --force …", kind.name()),
                )
                .into());
            }
            let count = if tenants.len() == 1 { tenants[0].to_string() } else { format!("{} tenants", tenants.len()) };
            if !prompt::confirm(&format!("This will {} for {count}. Continue?", kind.what()))? {
                out.status("Cancelled", "nothing was changed");
                return Ok(ExitStatus::Success);
            }
        }
        let (operation, verb) = match kind {
            Destructive::Reset => (Operation::Reset, "Reset"),
            Destructive::Refresh => (Operation::Refresh, "Refreshed"),
            Destructive::Fresh => (Operation::Fresh, "Recreated"),
        };
        Ok(run_over(tenancy, out, tenants, operation, &args.fleet, args.down.options(&args.fleet, tenancy), verb).await)
    })
    .await
}
