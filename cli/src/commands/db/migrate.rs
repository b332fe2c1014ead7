//! `tenancy db migrate`: applies pending migrations, or with `--pretend` prints their SQL.

use clap::Args;
use tenancy_core::migrate::fleet::{FleetOptions, Operation};

use super::{DownDuringArg, run_over};
use crate::CliContext;
use crate::commands::selection::{FleetArgs, TenantSelection};
use crate::exit::ExitStatus;

/// Arguments of `tenancy db migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub down: DownDuringArg,
    /// Print the SQL each pending migration would run, and change nothing
    #[arg(long, conflicts_with = "down_during")]
    pub pretend: bool,
    /// Read every tenant's database, even those the registry records as up to date with these
    /// migrations (catches a database changed behind tenancy's back)
    #[arg(long)]
    pub verify: bool,
}

pub async fn run(args: MigrateArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    ctx.with_tenancy(async |tenancy| {
        let tenants = args.selection.resolve(tenancy, ctx.out, "tenancy db migrate").await?;
        let (operation, verb) = if args.pretend { (Operation::Pretend, "Pretended") } else { (Operation::Migrate, "Migrated") };
        Ok(run_over(
            tenancy,
            ctx.out,
            tenants,
            operation,
            &args.fleet,
            FleetOptions { verify: args.verify, ..args.down.options(&args.fleet, tenancy) },
            verb,
        )
        .await)
    })
    .await
}
