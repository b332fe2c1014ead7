//! `tenancy db status`: for one tenant, every migration with when it was applied, the last failure
//! and the database's size; for many, a line each and totals; with `--summary`, the totals only,
//! trusting the registry's record of which tenants are up to date (as `db migrate` does).

use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tenancy_core::migrate::status::{MigrationStatus, StatusError, TenantMigrationReport};
use tenancy_core::{Tenancy, Tenant};

use crate::CliContext;
use crate::commands::selection::{ConcurrencyArg, TenantSelection};
use crate::exit::ExitStatus;
use crate::output::{Output, format_bytes};

/// Arguments of `tenancy db status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
    /// Only the totals: tenants up to date, with pending migrations, failed, unreadable. A tenant
    /// the registry records as up to date with these migrations is counted so without opening it
    #[arg(long)]
    pub summary: bool,
    /// With --summary: read every tenant's database, trusting no record
    #[arg(long, requires = "summary")]
    pub verify: bool,
}

pub async fn run(args: StatusArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    ctx.with_tenancy(async |tenancy| {
        let tenants = args.selection.resolve(tenancy, out, "tenancy db status").await?;
        let concurrency = args.concurrency.get(tenancy);
        if args.summary {
            return summarise(tenancy, out, tenants, concurrency, args.verify).await;
        }
        let results = read_each(tenants, concurrency, |tenant| async move { tenancy.migration_status(&tenant).await }).await;
        let (reports, unreadable) = readable(out, results);
        if args.selection.is_single() && reports.len() == 1 {
            detail(out, &reports[0]);
        } else {
            summary(out, &reports);
        }
        Ok(if unreadable > 0 || reports.iter().any(|r| r.last_failure.is_some()) { ExitStatus::Failure } else { ExitStatus::Success })
    })
    .await
}

/// `--summary`: tenants the registry records as up to date with these migrations, with no failure
/// since, are counted so unopened (unless `verify`); the others' tracking tables are read, no sizes.
async fn summarise(
    tenancy: &Tenancy,
    out: &Output,
    mut tenants: Vec<Tenant>,
    concurrency: usize,
    verify: bool,
) -> anyhow::Result<ExitStatus> {
    let failed = tenancy.registry().last_migration_failures().await?;
    let mut recorded = 0;
    if !verify {
        let fingerprint = tenancy.migration_fingerprint().await.to_owned();
        let before = tenants.len();
        tenants.retain(|tenant| tenant.migrated_set.as_deref() != Some(fingerprint.as_str()) || failed.contains_key(&tenant.id));
        recorded = before - tenants.len();
    }
    let failed = &failed;
    let results = read_each(tenants, concurrency, |tenant| async move {
        let state = tenancy.migration_state(&tenant).await?;
        Ok::<_, StatusError>(TenantState { failed: failed.contains_key(&tenant.id), state })
    })
    .await;
    let (states, unreadable) = readable(out, results);
    totals(out, &states, recorded, unreadable);
    Ok(if unreadable > 0 || states.iter().any(|s| s.failed) { ExitStatus::Failure } else { ExitStatus::Success })
}

/// What `--summary` needs of a tenant it reads.
struct TenantState {
    state: MigrationStatus,
    /// A migration failure is recorded and not cleared since.
    failed: bool,
}

/// `read` of every tenant, `concurrency` at once, in the order of their ids.
async fn read_each<T, F, Fut>(tenants: Vec<Tenant>, concurrency: usize, read: F) -> Vec<(Tenant, Result<T, StatusError>)>
where
    F: Fn(Tenant) -> Fut,
    Fut: Future<Output = Result<T, StatusError>>,
{
    let mut results: Vec<_> = futures::stream::iter(tenants)
        .map(|tenant| {
            let reading = read(tenant.clone());
            async move { (tenant, reading.await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.sort_by_key(|(tenant, _)| tenant.id);
    results
}

/// The results that were read, and how many tenants could not be (each reported as it is met).
fn readable<T>(out: &Output, results: Vec<(Tenant, Result<T, StatusError>)>) -> (Vec<T>, usize) {
    let mut read = Vec::new();
    let mut unreadable = 0;
    for (tenant, result) in results {
        match result {
            Ok(value) => read.push(value),
            Err(err) => {
                unreadable += 1;
                out.failure(
                    "Unreadable",
                    format!("{tenant}: {}", anyhow::Error::new(err).chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")),
                );
            }
        }
    }
    (read, unreadable)
}

fn detail(out: &Output, report: &TenantMigrationReport) {
    if out.is_json() {
        out.json(report);
        return;
    }
    out.data(format!("{}", report.tenant));
    for state in &report.status.migrations {
        match state.applied_at {
            Some(at) => out.data(format!("  ✅ {:<56} applied {}", state.migration.to_string(), at.format("%Y-%m-%d %H:%M:%S"))),
            None => out.data(format!("  ⏳ {:<56} pending", state.migration.to_string())),
        }
    }
    for unknown in &report.status.unknown {
        out.data(format!("  ❓ {unknown:<56} applied, but this binary does not know it"));
    }
    if let Some(failure) = &report.last_failure {
        out.data(format!("  ❌ {:<56} failed {}: {}", failure.migration, failure.failed_at.format("%Y-%m-%d %H:%M:%S"), failure.error));
    }
    out.data(format!(
        "  📊 {} applied, {} pending, {} tables, {}",
        report.status.applied(),
        report.status.pending(),
        report.stats.tables,
        format_bytes(report.stats.size_bytes)
    ));
}

/// `--summary`: one line (one event) of totals; `recorded` tenants were counted up to date from
/// the registry's record without being read.
fn totals(out: &Output, states: &[TenantState], recorded: usize, unreadable: usize) {
    let read_up_to_date = states.iter().filter(|s| s.state.pending() == 0 && !s.failed).count();
    let with_pending = states.iter().filter(|s| s.state.pending() > 0).count();
    let pending: usize = states.iter().map(|s| s.state.pending()).sum();
    let failed = states.iter().filter(|s| s.failed).count();
    let tenants = recorded + states.len() + unreadable;
    let up_to_date = recorded + read_up_to_date;
    if out.is_json() {
        out.json(&json!({"event": "totals", "tenants": tenants, "up_to_date": up_to_date, "up_to_date_by_record": recorded,
            "with_pending": with_pending, "pending": pending, "failed": failed, "unreadable": unreadable}));
        return;
    }
    // The data of this command, so on stdout (and kept by --quiet).
    out.data(format!(
        "{tenants} tenants: {up_to_date} up to date ({recorded} by the registry's record, {} read), {with_pending} with {pending} migrations pending, {failed} with a failure, {unreadable} unreadable",
        states.len()
    ));
}

fn summary(out: &Output, reports: &[TenantMigrationReport]) {
    let (mut applied, mut pending, mut failed, mut bytes) = (0, 0, 0, 0);
    for report in reports {
        applied += report.status.applied();
        pending += report.status.pending();
        failed += usize::from(report.last_failure.is_some());
        bytes += report.stats.size_bytes;
        if out.is_json() {
            out.json(report);
            continue;
        }
        let failure = report.last_failure.as_ref().map_or_else(String::new, |f| format!("  failed at {}: {}", f.migration, f.error));
        out.data(format!(
            "{:<60} applied {:>3}  pending {:>3}  tables {:>3}  {:>10}{failure}",
            report.tenant.to_string(),
            report.status.applied(),
            report.status.pending(),
            report.stats.tables,
            format_bytes(report.stats.size_bytes)
        ));
    }
    if out.is_json() {
        out.json(&json!({"event": "totals", "tenants": reports.len(), "applied": applied, "pending": pending, "failed": failed, "size_bytes": bytes}));
    } else {
        out.status(
            "Total",
            format!(
                "{} tenants: {applied} migrations applied, {pending} pending, {failed} tenants with a failure, {}",
                reports.len(),
                format_bytes(bytes)
            ),
        );
    }
}
