//! `tenancy tenant delete TENANT`: drops the database, then removes the registry rows.

use clap::Args;
use tenancy_core::provisioning::DeleteOptions;

use crate::CliContext;
use crate::exit::{ExitStatus, UsageError};
use crate::prompt;

/// Arguments of `tenancy tenant delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The tenant: id, id prefix (8+ characters), domain or name
    pub tenant: String,
    /// Do not ask for confirmation (required when not on a terminal)
    #[arg(long, short)]
    pub force: bool,
    /// Remove the tenant from the registry but keep its database
    #[arg(long)]
    pub keep_database: bool,
}

pub async fn run(args: DeleteArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let deleted = ctx
        .with_tenancy(async |tenancy| {
            let tenant = tenancy.registry().resolve(&args.tenant).await?;
            let what = if args.keep_database {
                "remove it from the registry, keeping its database".to_owned()
            } else {
                format!("drop database `{}`", tenant.database)
            };
            if !args.force {
                if !out.is_interactive() {
                    return Err(UsageError::new(
                        format!("refusing to delete tenant {tenant} without --force when not on a terminal"),
                        format!("tenancy tenant delete {} --force", tenant.id),
                    )
                    .into());
                }
                if !prompt::confirm(&format!("Delete tenant {tenant} and {what}?"))? {
                    out.status("Cancelled", "nothing was deleted");
                    return Ok(None);
                }
            }
            let options = DeleteOptions { keep_database: args.keep_database, flags: ctx.tenant_flags().clone() };
            let notes = tenancy.delete_tenant(&tenant, options).await?;
            out.status("Deleted", format!("tenant {tenant} ({what})"));
            for note in &notes {
                out.line(note);
            }
            Ok(Some((tenant, notes)))
        })
        .await?;
    if let Some((tenant, notes)) = deleted
        && out.is_json()
    {
        out.json(&serde_json::json!({"event": "tenant_deleted", "id": tenant.id, "database_dropped": !args.keep_database, "notes": notes}));
    }
    Ok(ExitStatus::Success)
}
