//! `tenancy backup prune`: deletes the backups a retention policy does not keep, never a tenant's
//! newest backup whose checksum verifies.

use clap::Args;
use serde_json::json;
use tenancy_core::command::selection::TenantSelection;
use tenancy_core::command::{ExitStatus, UsageError};

use super::{Context, emit};
use crate::engine;
use crate::prune::Retention;
use crate::store::{Found, STALE_STAGING};

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    selection: TenantSelection,
    /// Keep the newest N backups [default: backup.keep_last; any --keep-* flag replaces the whole policy]
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one [default: backup.keep_daily]
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one [default: backup.keep_weekly]
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one [default: backup.keep_monthly]
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// Say what would be deleted; delete nothing
    #[arg(long)]
    dry_run: bool,
}

impl PruneArgs {
    fn retention(&self, cx: &Context<'_>) -> Retention {
        let flags = [self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly];
        if flags.iter().all(Option::is_none) {
            return cx.config.retention();
        }
        Retention {
            last: self.keep_last.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
        }
    }
}

pub async fn run(args: PruneArgs, cx: &Context<'_>) -> anyhow::Result<ExitStatus> {
    let out = cx.out();
    let retention = args.retention(cx);
    if retention.keeps_nothing() {
        return Err(UsageError::new("this policy keeps no backup", "give at least one --keep-* a number above 0").into());
    }
    let tenants = args.selection.resolve(cx.tenancy, out, "tenancy backup prune").await?;
    let (verb, mut deleted, mut kept, mut failed) = (if args.dry_run { "Would delete" } else { "Deleted" }, 0usize, 0usize, 0usize);
    for tenant in &tenants {
        let mut backups: Vec<Found> = Vec::new();
        for id in cx.store.ids(&tenant.id).await? {
            match cx.store.open(&tenant.id, &id).await {
                Ok(found) => backups.push(found),
                // Never deleted by a policy that cannot date it; `list` shows it.
                Err(err) => out.warn(&format!("{err}; left alone")),
            }
        }
        let created: Vec<_> = backups.iter().map(|found| found.manifest.created_at).collect();
        let mut keep = retention.keep(&created);
        // The newest backup that verifies stays, whatever the policy says.
        let mut newest_first: Vec<usize> = (0..backups.len()).collect();
        newest_first.sort_by(|a, b| created[*b].cmp(&created[*a]));
        for index in newest_first {
            if engine::verify_checksum(cx.store, &backups[index]).await.is_ok() {
                keep.insert(index);
                break;
            }
        }
        for (index, found) in backups.iter().enumerate() {
            let id = &found.manifest.id;
            if keep.contains(&index) {
                kept += 1;
                continue;
            }
            let outcome = if args.dry_run { Ok(()) } else { cx.store.delete(found).await };
            match outcome {
                Ok(()) => {
                    deleted += 1;
                    emit(out, json!({"event": "backup_pruned", "backup": id, "tenant": tenant.id, "dry_run": args.dry_run}));
                    out.status(verb, &format!("backup {id} of tenant {tenant} ({})", found.manifest.created_at.format("%Y-%m-%d %H:%M")));
                }
                Err(err) => {
                    failed += 1;
                    out.failure("Failed", &format!("cannot delete backup {id}: {err}"));
                }
            }
        }
        if !args.dry_run {
            cx.store.sweep_staging(&tenant.id, STALE_STAGING);
        }
    }
    emit(out, json!({"event": "summary", "deleted": deleted, "kept": kept, "failed": failed, "dry_run": args.dry_run}));
    out.status("Pruned", &format!("{deleted} deleted{}, {kept} kept", if args.dry_run { " (dry run)" } else { "" }));
    Ok(if failed == 0 { ExitStatus::Success } else { ExitStatus::Failure })
}
