//! `tenancy backup …`.

mod create;
mod list;
mod prune;
mod restore;
mod verify;

use async_trait::async_trait;
use clap::{FromArgMatches, Subcommand};
use tenancy_core::command::{AppContext, Command, ExitStatus};
use tenancy_core::{Tenancy, TenantId};

use crate::config::BackupConfig;
use crate::store::{LocalStore, S3Store, Store};

/// `tenancy backup`.
pub struct BackupCommand;

#[derive(Debug, Subcommand)]
enum Action {
    /// Back tenants up (one file per tenant, published by its manifest when complete)
    Create(create::CreateArgs),
    /// List backups, oldest first
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// Check backups: checksum, readable dump, and with --restore-test a trial restore
    Verify(verify::VerifyArgs),
    /// Restore a backup into its tenant, or into a new tenant with --into-new
    Restore(restore::RestoreArgs),
    /// Delete old backups by a retention policy
    Prune(prune::PruneArgs),
}

#[async_trait]
impl Command for BackupCommand {
    fn definition(&self) -> clap::Command {
        Action::augment_subcommands(
            clap::Command::new("backup").about("Back up and restore tenants (backup plugin)").subcommand_required(true),
        )
    }

    async fn run(&self, app: &dyn AppContext, args: &clap::ArgMatches) -> anyhow::Result<ExitStatus> {
        let action = Action::from_arg_matches(args)?;
        let config = BackupConfig::load(app.config())?;
        let bucket = config.s3.as_ref().map(S3Store::new).transpose()?;
        let store = Store::new(LocalStore::new(config.root(app.config())), bucket);
        let tenancy = app.open_tenancy().await?;
        let context = Context { app, tenancy: &tenancy, config: &config, store: &store };
        let result = match action {
            Action::Create(args) => create::run(args, &context).await,
            Action::List(args) => list::run(args, &context).await,
            Action::Verify(args) => verify::run(args, &context).await,
            Action::Restore(args) => restore::run(args, &context).await,
            Action::Prune(args) => prune::run(args, &context).await,
        };
        tenancy.close().await;
        result
    }
}

/// What every subcommand works with.
struct Context<'a> {
    app: &'a dyn AppContext,
    tenancy: &'a Tenancy,
    config: &'a BackupConfig,
    store: &'a Store,
}

impl Context<'_> {
    fn out(&self) -> &dyn tenancy_core::command::Console {
        self.app.console()
    }

    /// Backup `id`; an id that is not in the store is the caller's mistake.
    async fn find(&self, id: &crate::manifest::BackupId) -> anyhow::Result<crate::store::Found> {
        self.store.find(id).await.map_err(|err| match err {
            crate::store::StoreError::Unknown { .. } => {
                anyhow::Error::new(tenancy_core::command::UsageError::new(err.to_string(), "tenancy backup list"))
            }
            other => other.into(),
        })
    }

    /// The tenant ids `--tenant` names: registered tenants by any reference, or the id of a
    /// deleted tenant whose backups are still here.
    async fn tenant_ids(&self, references: &[String]) -> anyhow::Result<Vec<TenantId>> {
        let mut ids = Vec::new();
        for reference in references {
            let id = match self.tenancy.registry().resolve(reference).await {
                Ok(tenant) => tenant.id,
                Err(err) => match TenantId::parse(reference.trim()) {
                    Ok(id) if self.store.tenants().await?.contains(&id) => id,
                    _ => return Err(err.into()),
                },
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

/// A JSON event, with `--json` only.
fn emit(out: &dyn tenancy_core::command::Console, event: serde_json::Value) {
    if out.is_json() {
        out.json(&event);
    }
}
