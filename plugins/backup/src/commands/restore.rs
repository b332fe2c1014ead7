//! `tenancy backup restore`: into the tenant the backup was made of (which is made inactive
//! meanwhile and given its status back however the restore ends), or into a new tenant created
//! through the provisioning steps, with the restore in place of an empty database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use serde_json::json;
use tenancy_core::command::{ExitStatus, UsageError};
use tenancy_core::provisioning::{Provisioning, ProvisioningStep, StepOutcome, TenantRequest};
use tenancy_core::{BoxError, Domain, Tenant, TenantName, TenantStatus};

use super::{Context, emit};
use crate::archive::Identities;
use crate::engine::{self, Unpacked};
use crate::manifest::{BackupId, Manifest};
use crate::source::Source;
use crate::store::Found;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (an id from `tenancy backup list`)
    #[arg(value_name = "BACKUP")]
    backup: BackupId,
    /// Replace the tenant's data without asking (required off a terminal)
    #[arg(long)]
    force: bool,
    /// The age identity file that decrypts an encrypted backup [default: backup.identity_file]
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Create a new tenant with this name from the backup instead (through the provisioning steps; then migrated)
    #[arg(long, value_name = "NAME")]
    into_new: Option<String>,
    /// With --into-new: the new tenant's domain; repeat for more, the first is primary
    #[arg(long, requires = "into_new", value_name = "DOMAIN")]
    domain: Vec<String>,
}

pub async fn run(args: RestoreArgs, cx: &Context<'_>) -> anyhow::Result<ExitStatus> {
    let found = cx.find(&args.backup).await?;
    let identities = cx.config.identities(cx.tenancy.config(), args.identity.as_deref())?;
    match &args.into_new {
        Some(name) => into_new(cx, &found, identities, name, &args.domain).await,
        None => in_place(cx, &found, identities, args.force).await,
    }
}

async fn in_place(cx: &Context<'_>, found: &Found, identities: Arc<Identities>, force: bool) -> anyhow::Result<ExitStatus> {
    let out = cx.out();
    let manifest = &found.manifest;
    let Some(tenant) = cx.tenancy.registry().get(&manifest.tenant.id).await? else {
        return Err(UsageError::new(
            format!("backup {} is of tenant {} ({}), which no longer exists", manifest.id, manifest.tenant.name, manifest.tenant.id),
            format!("tenancy backup restore {} --into-new NAME", manifest.id),
        )
        .into());
    };
    let source = Source::of(cx.tenancy, &tenant)?;
    engine::check_compatible(manifest, &source)
        .map_err(|message| UsageError::new(message, "restore it with --into-new on a matching server"))?;
    if !force {
        let question = format!(
            "Replace all data of tenant {tenant} with backup {} of {}?",
            manifest.id,
            manifest.created_at.format("%Y-%m-%d %H:%M UTC")
        );
        if !out.is_interactive() {
            return Err(UsageError::new(
                format!("restoring replaces all data of tenant {tenant}"),
                format!("tenancy backup restore {} --force", manifest.id),
            )
            .into());
        }
        if !out.confirm(&question)? {
            out.status("Cancelled", "nothing was changed");
            return Ok(ExitStatus::Success);
        }
    }
    let cannot = |err: anyhow::Error| err.context(format!("backup {} cannot be restored", manifest.id));
    let unpacked = Unpacked::dump(cx.store, found, identities.clone()).await.map_err(cannot)?;
    let files = Unpacked::files(cx.store, found, identities).await.map_err(cannot)?;
    // The backup's schema may be older than the tenant's: whatever the registry records of its
    // migrations no longer holds (forgotten before and after, see `Registry::forget_migrated_set`).
    cx.tenancy.registry().forget_migrated_set(&tenant.id).await?;
    let previous = tenant.status;
    if previous != TenantStatus::Inactive {
        cx.tenancy.registry().set_status(&tenant.id, TenantStatus::Inactive).await?;
    }
    let mut restored = engine::restore_into(&source, manifest, unpacked.path(), cx.config.lock_timeout()).await;
    if restored.is_ok()
        && let Err(err) = cx.tenancy.give_to_role(&tenant, None).await
    {
        // Restored by the server's user: until its role owns the tables, the tenant cannot use them.
        restored = Err(anyhow::Error::new(err).context(format!(
            "the database of tenant {tenant} was restored, but its role could not take it over; running the restore again is safe"
        )));
    }
    cx.tenancy.connections().close(&tenant.id).await;
    if let Err(err) = cx.tenancy.registry().forget_migrated_set(&tenant.id).await {
        cx.out().warn(&format!("the registry may still record tenant {tenant} as up to date: {err}; run `tenancy db migrate --verify`"));
    }
    if restored.is_ok()
        && let Some(files) = &files
        && let Err(err) = cx.tenancy.files_of(&tenant).replace_with(files.path()).await
    {
        restored = Err(anyhow::Error::new(err).context(format!(
            "the database of tenant {tenant} was restored from backup {}, but not its files; running the restore again is safe",
            manifest.id
        )));
    }
    if previous != TenantStatus::Inactive {
        cx.tenancy.registry().set_status(&tenant.id, previous).await.map_err(|err| {
            anyhow::Error::new(err).context(format!("tenant {tenant} was left inactive: `tenancy tenant activate {}`", tenant.id))
        })?;
    }
    let note = restored.map_err(|err| {
        // Those two were said with what was restored and what was not.
        if err.chain().any(|cause| cause.is::<tenancy_core::files::FilesError>() || cause.is::<tenancy_core::database::DatabaseError>()) {
            err
        } else {
            err.context(format!("restoring backup {} into tenant {tenant} failed; its data is as it was", manifest.id))
        }
    })?;
    report(cx, &tenant, manifest, note).await;
    if files.is_none() {
        cx.out().warn(&format!(
            "backup {} was made before backups held tenants' files: the files of tenant {tenant} were left as they are",
            manifest.id
        ));
    }
    Ok(ExitStatus::Success)
}

async fn into_new(
    cx: &Context<'_>,
    found: &Found,
    identities: Arc<Identities>,
    name: &str,
    domains: &[String],
) -> anyhow::Result<ExitStatus> {
    let mut request = TenantRequest::new(TenantName::parse(name)?);
    for domain in domains {
        request.domains.push(Domain::parse(domain)?);
    }
    let cannot = |err: anyhow::Error| err.context(format!("backup {} cannot be restored", found.manifest.id));
    let unpacked = Unpacked::dump(cx.store, found, identities.clone()).await.map_err(cannot)?;
    let files = Unpacked::files(cx.store, found, identities).await.map_err(cannot)?;
    let mut provisioner = cx.tenancy.provisioner();
    provisioner.insert_after(
        "create database",
        Arc::new(RestoreStep {
            manifest: found.manifest.clone(),
            dump: unpacked.path().to_owned(),
            lock_timeout: cx.config.lock_timeout(),
        }),
    );
    if let Some(files) = &files {
        provisioner.insert_after("restore backup", Arc::new(RestoreFilesStep { folder: files.path().to_owned() }));
    }
    let tenant = provisioner.provision(cx.tenancy, &request, &()).await?;
    report(cx, &tenant, &found.manifest, None).await;
    Ok(ExitStatus::Success)
}

async fn report(cx: &Context<'_>, tenant: &Tenant, manifest: &Manifest, note: Option<String>) {
    let out = cx.out();
    emit(out, json!({"event": "backup_restored", "backup": manifest.id, "tenant": tenant.id, "name": tenant.name, "note": note}));
    out.status("Restored", &format!("backup {} into tenant {tenant}", manifest.id));
    if let Some(note) = note {
        out.warn(&note);
    }
    if let Ok(status) = cx.tenancy.migration_status(tenant).await
        && status.status.pending() > 0
    {
        out.warn(&format!(
            "the backup is {} migrations behind: `tenancy db migrate --tenant {}` brings it up to date",
            status.status.pending(),
            tenant.id
        ));
    }
}

/// Fills a new tenant's database from a backup, in place of the empty database the `migrate`
/// step would otherwise start from.
struct RestoreStep {
    manifest: Manifest,
    dump: PathBuf,
    lock_timeout: Duration,
}

#[async_trait]
impl ProvisioningStep for RestoreStep {
    fn name(&self) -> &str {
        "restore backup"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        let tenant = job.tenant()?.clone();
        let source = Source::of(job.tenancy, &tenant)?;
        engine::check_compatible(&self.manifest, &source)?;
        let note = engine::restore_into(&source, &self.manifest, &self.dump, self.lock_timeout).await?;
        // Restored by the server's user: the tenant's role takes it over.
        job.tenancy.give_to_role(&tenant, None).await?;
        Ok(StepOutcome::Done(note.unwrap_or_else(|| format!("backup {}", self.manifest.id))))
    }
}

/// Gives a new tenant the backup's files; undone (the files removed) if a later step fails.
struct RestoreFilesStep {
    folder: PathBuf,
}

#[async_trait]
impl ProvisioningStep for RestoreFilesStep {
    fn name(&self) -> &str {
        "restore files"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        let files = job.tenancy.files_of(job.tenant()?);
        files.replace_with(&self.folder).await?;
        Ok(StepOutcome::Done(files.describe()))
    }

    async fn undo(&self, job: &Provisioning<'_>) -> Result<(), BoxError> {
        job.tenancy.files_of(job.tenant()?).delete_all().await?;
        Ok(())
    }
}
