//! `tenancy db seed`: runs seeders chosen with `--class`, picked on a terminal, or the default.

use std::sync::Arc;

use clap::Args;
use tenancy_core::Seeder;
use tenancy_core::migrate::fleet::Operation;

use super::run_over;
use crate::CliContext;
use crate::commands::selection::{FleetArgs, TenantSelection};
use crate::exit::{ExitStatus, UsageError};
use crate::output::Output;
use crate::prompt;

/// Arguments of `tenancy db seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Seeders to run, in this order (comma-separated) [default: DatabaseSeeder]
    #[arg(long, value_delimiter = ',', value_name = "SEEDER")]
    pub class: Vec<String>,
}

pub async fn run(args: SeedArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let seeders = choose(&args.class, ctx.seeders(), out)?;
    let Some(seeders) = seeders else {
        out.status("Cancelled", "no seeder was chosen");
        return Ok(ExitStatus::Success);
    };
    ctx.with_tenancy(async |tenancy| {
        let tenants = args.selection.resolve(tenancy, out, "tenancy db seed").await?;
        Ok(run_over(tenancy, out, tenants, Operation::Seed(seeders), &args.fleet, args.fleet.options(tenancy), "Seeded").await)
    })
    .await
}

/// The seeders named in `--class`, or the one picked on a terminal, or the default.
pub fn choose(names: &[String], available: &[Arc<dyn Seeder>], out: &Output) -> anyhow::Result<Option<Vec<Arc<dyn Seeder>>>> {
    let Some(default) = available.first() else {
        return Err(UsageError::new("this application has no seeders", "register seeders with `App::seeders`").into());
    };
    if !names.is_empty() {
        return find(names, available).map(Some);
    }
    if !out.is_interactive() {
        out.status("Seeding", format!("with {} (the default; choose others with --class)", default.name()));
        return Ok(Some(vec![default.clone()]));
    }
    let options: Vec<String> =
        available
            .iter()
            .enumerate()
            .map(|(index, seeder)| {
                if index == 0 { format!("{} (Default)", seeder.name()) } else { format!("{} — {}", seeder.name(), seeder.description()) }
            })
            .collect();
    Ok(prompt::pick_one("Which seeder?", options)?.map(|index| vec![available[index].clone()]))
}

/// The seeders called `names`, or the default when `names` is empty; never asks.
pub fn choose_off_terminal(names: &[String], available: &[Arc<dyn Seeder>]) -> anyhow::Result<Vec<Arc<dyn Seeder>>> {
    match available.first() {
        None => Err(UsageError::new("this application has no seeders", "register seeders with `App::seeders`").into()),
        Some(default) if names.is_empty() => Ok(vec![default.clone()]),
        Some(_) => find(names, available),
    }
}

/// The seeders called `names`, in that order.
pub fn find(names: &[String], available: &[Arc<dyn Seeder>]) -> anyhow::Result<Vec<Arc<dyn Seeder>>> {
    names
        .iter()
        .map(|name| {
            let name = name.trim();
            available.iter().find(|s| s.name() == name).cloned().ok_or_else(|| {
                let known: Vec<&str> = available.iter().map(|s| s.name()).collect();
                UsageError::new(format!("unknown seeder `{name}`"), format!("the seeders are: {}", known.join(", "))).into()
            })
        })
        .collect()
}
