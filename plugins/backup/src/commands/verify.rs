//! `tenancy backup verify`: level 1 compares the stored file with the manifest's checksum; level 2
//! also decompresses it and has the dump tool read it; `--restore-test` restores it into a scratch
//! database and compares its tables' row counts and migrations with the manifest's.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use tenancy_core::command::format::format_bytes;
use tenancy_core::command::{ExitStatus, UsageError};

use super::{Context, emit};
use crate::engine::{self, Unpacked};
use crate::manifest::{BackupId, Verification};
use crate::source::Source;
use crate::store::Found;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backups to check (ids from `tenancy backup list`)
    #[arg(value_name = "BACKUP")]
    backups: Vec<BackupId>,
    /// Check the newest backup of this tenant; repeat for more
    #[arg(long = "tenant", short = 't', value_name = "TENANT")]
    tenants: Vec<String>,
    /// 1: the checksum; 2: also decompress it and have the dump tool read it
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    level: u8,
    /// The age identity file that decrypts encrypted backups [default: backup.identity_file]
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Also restore it into a scratch database, compare row counts and migrations, and drop it
    #[arg(long)]
    restore_test: bool,
}

pub async fn run(args: VerifyArgs, cx: &Context<'_>) -> anyhow::Result<ExitStatus> {
    let out = cx.out();
    let mut chosen: Vec<Result<Found, (String, anyhow::Error)>> = Vec::new();
    for id in &args.backups {
        chosen.push(cx.find(id).await.map_err(|err| (id.to_string(), err)));
    }
    for tenant in cx.tenant_ids(&args.tenants).await? {
        match cx.store.ids(&tenant).await?.pop() {
            Some(id) => chosen.push(cx.store.open(&tenant, &id).await.map_err(|err| (id.to_string(), err.into()))),
            None => return Err(UsageError::new(format!("tenant {tenant} has no backup"), "tenancy backup create --tenant …").into()),
        }
    }
    if chosen.is_empty() {
        return Err(UsageError::new("no backup given", "tenancy backup verify BACKUP…  (or --tenant T for its newest)").into());
    }
    let (mut failed, mut bad_input) = (0usize, false);
    for found in chosen {
        let (id, outcome) = match found {
            Ok(found) => (found.manifest.id.to_string(), verify_and_record(&args, cx, &found).await),
            Err((id, err)) => (id, Err(err)),
        };
        match outcome {
            Ok(findings) => {
                emit(out, json!({"event": "backup_verified", "backup": id, "findings": findings}));
                out.status("Verified", &format!("backup {id}: {}", findings.join("; ")));
            }
            Err(err) => {
                failed += 1;
                // A missing or wrong key is the caller's to fix, as is an unknown id.
                bad_input |= err.chain().any(|cause| cause.is::<UsageError>());
                let message = format!("{err:#}");
                emit(out, json!({"event": "backup_invalid", "backup": id, "error": message}));
                out.failure("Invalid", &format!("backup {id}: {message}"));
            }
        }
    }
    Ok(match (failed, bad_input) {
        (0, _) => ExitStatus::Success,
        (_, true) => ExitStatus::Usage,
        (_, false) => ExitStatus::Failure,
    })
}

/// Verifies `found` and records that it did, for `backup list` and `monitor stats`.
async fn verify_and_record(args: &VerifyArgs, cx: &Context<'_>, found: &Found) -> anyhow::Result<Vec<String>> {
    let findings = verify(args, cx, found).await?;
    let verification = Verification { verified_at: chrono::Utc::now(), restore_test: args.restore_test };
    if let Err(err) = cx.store.record_verification(found, &verification).await {
        cx.out().warn(&format!("backup {} verified, but that could not be recorded: {err}", found.manifest.id));
    }
    Ok(findings)
}

async fn verify(args: &VerifyArgs, cx: &Context<'_>, found: &Found) -> anyhow::Result<Vec<String>> {
    engine::verify_checksum(cx.store, found).await?;
    let checked = if found.files.is_some() { "checksums match" } else { "checksum matches" };
    let mut findings = vec![format!("{checked} ({})", found.manifest.checksum.algorithm)];
    if args.level < 2 && !args.restore_test {
        return Ok(findings);
    }
    let identities = cx.config.identities(cx.tenancy.config(), args.identity.as_deref())?;
    let unpacked = Unpacked::dump(cx.store, found, identities.clone()).await?;
    findings.push(engine::check_readable(found.manifest.source.format, &unpacked).await?);
    if let (Some(_), Some(archive)) = (Unpacked::files(cx.store, found, identities).await?, &found.manifest.files) {
        findings.push(format!("its {} files ({}) unpack as the manifest says", archive.files, format_bytes(archive.bytes)));
    }
    if args.restore_test {
        findings.push(restore_test(cx, found, &unpacked).await?);
    }
    Ok(findings)
}

/// Restores into scratch and compares with the manifest.
async fn restore_test(cx: &Context<'_>, found: &Found, unpacked: &Unpacked) -> anyhow::Result<String> {
    let manifest = &found.manifest;
    // The scratch copy goes to the server of the tenant if it still exists, else the default one.
    let source = match cx.tenancy.registry().get(&manifest.tenant.id).await? {
        Some(tenant) => Source::of(cx.tenancy, &tenant)?,
        None => anyhow::bail!("tenant {} no longer exists; restore it with `--into-new` to test it", manifest.tenant.id),
    };
    engine::check_compatible(manifest, &source).map_err(anyhow::Error::msg)?;
    let restored = engine::restore_test(cx.tenancy, cx.store, &source, manifest, unpacked).await?;
    if restored.tables != manifest.tables {
        let differences: Vec<String> = manifest
            .tables
            .keys()
            .chain(restored.tables.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|table| manifest.tables.get(*table) != restored.tables.get(*table))
            .map(|table| format!("{table}: {:?} in the manifest, {:?} restored", manifest.tables.get(table), restored.tables.get(table)))
            .collect();
        anyhow::bail!("the trial restore differs from the manifest: {}", differences.join(", "));
    }
    if restored.migrations != manifest.migrations {
        anyhow::bail!("the trial restore has {} applied migrations, the manifest {}", restored.migrations.len(), manifest.migrations.len());
    }
    let rows: u64 = restored.tables.values().sum();
    Ok(format!("a trial restore has the same {} tables, {rows} rows and {} migrations", restored.tables.len(), restored.migrations.len()))
}
