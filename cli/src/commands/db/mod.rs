//! `tenancy db …`: migrations and seeders over one tenant or many.

mod migrate;
pub mod seed;
mod status;
mod undo;

use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use serde_json::json;
use tenancy_core::migrate::fleet::{FleetOptions, Operation, TenantReport};
use tenancy_core::{Tenancy, Tenant};

use crate::CliContext;
use crate::commands::selection::FleetArgs;
use crate::exit::ExitStatus;
use crate::fleet_view::FleetView;
use crate::output::{Output, format_count, format_duration, plural};

/// `tenancy db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (core's tables first, then the application's)
    Migrate(migrate::MigrateArgs),
    /// Show applied and pending migrations, the last failure and database statistics
    Status(status::StatusArgs),
    /// Roll back the last migrations
    Rollback(undo::RollbackArgs),
    /// Roll back every migration
    Reset(undo::DestructiveArgs),
    /// Roll back every migration, then apply them all
    Refresh(undo::DestructiveArgs),
    /// Drop everything in the tenant database, then apply every migration
    Fresh(undo::DestructiveArgs),
    /// Run seeders
    Seed(seed::SeedArgs),
}

pub async fn run(command: DbCommand, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    match command {
        DbCommand::Migrate(args) => migrate::run(args, ctx).await,
        DbCommand::Status(args) => status::run(args, ctx).await,
        DbCommand::Rollback(args) => undo::rollback(args, ctx).await,
        DbCommand::Reset(args) => undo::destructive(args, undo::Destructive::Reset, ctx).await,
        DbCommand::Refresh(args) => undo::destructive(args, undo::Destructive::Refresh, ctx).await,
        DbCommand::Fresh(args) => undo::destructive(args, undo::Destructive::Fresh, ctx).await,
        DbCommand::Seed(args) => seed::run(args, ctx).await,
    }
}

/// `--down-during`, for the commands that change tenants' schemas.
#[derive(Debug, clap::Args)]
pub struct DownDuringArg {
    /// Take each tenant down for maintenance (503 for its visitors) while its schema changes, and
    /// up again afterwards, even when that fails
    #[arg(long)]
    pub down_during: bool,
}

impl DownDuringArg {
    /// The run's options: `fleet`'s, with this flag.
    fn options(&self, fleet: &FleetArgs, tenancy: &Tenancy) -> FleetOptions {
        FleetOptions { down_during: self.down_during, ..fleet.options(tenancy) }
    }
}

/// Runs `operation` over `tenants` with a [`FleetView`], prints the summary and says how it ended.
async fn run_over(
    tenancy: &Tenancy,
    out: &Output,
    tenants: Vec<Tenant>,
    operation: Operation,
    fleet: &FleetArgs,
    options: FleetOptions,
    verb: &'static str,
) -> ExitStatus {
    let started = Instant::now();
    let total = tenants.len();
    if out.is_json() {
        out.json(&json!({"event": "fleet_started", "tenants": total, "concurrency": options.concurrency}));
    } else if total > 1 {
        out.status(doing(verb), format!("{}, {}", plural(total, "tenant"), fleet.concurrency.describe(tenancy)));
    }
    let view = Arc::new(FleetView::new(out, total, verb));
    let reports = tenancy.run_fleet(tenants, &operation, options, view.clone()).await;
    view.finish();
    summarize(out, &reports, verb, started.elapsed())
}

/// "Migrating" for "Migrated": the verb of a run's first line.
fn doing(verb: &str) -> &'static str {
    match verb {
        "Migrated" => "Migrating",
        "Pretended" => "Pretending",
        "Rolled back" => "Rolling back",
        "Reset" => "Resetting",
        "Refreshed" => "Refreshing",
        "Recreated" => "Recreating",
        "Seeded" => "Seeding",
        _ => "Working on",
    }
}

fn summarize(out: &Output, reports: &[TenantReport], verb: &str, elapsed: std::time::Duration) -> ExitStatus {
    let failed: Vec<&TenantReport> = reports.iter().filter(|r| r.failure.is_some()).collect();
    let skipped = reports.iter().filter(|r| r.skipped.is_some()).count();
    let succeeded = reports.len() - failed.len() - skipped;
    let idle = reports.iter().filter(|r| r.had_nothing_to_do()).count();
    let migrations: usize = reports.iter().map(|r| r.migrations.len() + r.pretended.len()).sum();
    let seeders: usize = reports.iter().map(|r| r.seeders.len()).sum();
    if out.is_json() {
        let failures: Vec<_> = failed
            .iter()
            .map(|r| json!({"tenant": r.tenant.id, "name": r.tenant.name, "step": r.failure.as_ref().map(|f| &f.step), "error": r.failure.as_ref().map(|f| &f.error)}))
            .collect();
        out.json(&json!({"event": "summary", "tenants": reports.len(), "succeeded": succeeded, "nothing_to_do": idle, "failed": failed.len(),
            "skipped": skipped, "migrations": migrations, "seeders": seeders, "elapsed_ms": elapsed.as_secs_f64() * 1000.0, "failures": failures}));
    } else {
        let work = if seeders > 0 { plural(seeders, "seeder run") } else { plural(migrations, "migration") };
        let idle = if idle > 0 { format!(" ({} had nothing to do)", format_count(idle as u64)) } else { String::new() };
        let line = format!(
            "{} in {}: {} succeeded{idle}, {} failed, {} skipped; {work}",
            plural(reports.len(), "tenant"),
            format_duration(elapsed),
            format_count(succeeded as u64),
            format_count(failed.len() as u64),
            format_count(skipped as u64),
        );
        if failed.is_empty() {
            out.status(verb, line)
        } else {
            out.failure(verb, line)
        }
        for report in &failed {
            if let Some(failure) = &report.failure {
                out.failure("Failed", format!("{} at {}: {}", report.tenant, failure.step, failure.error));
            }
        }
    }
    if failed.is_empty() { ExitStatus::Success } else { ExitStatus::Failure }
}
