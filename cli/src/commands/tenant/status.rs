//! `tenancy tenant activate|deactivate|suspend TENANT`.

use clap::Args;
use tenancy_core::TenantStatus;

use crate::CliContext;
use crate::exit::{ExitStatus, UsageError};

/// Arguments of the status commands.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The tenant: id, id prefix (8+ characters), domain or name
    pub tenant: String,
}

pub async fn run(args: StatusArgs, status: TenantStatus, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let tenant = ctx
        .with_tenancy(async |tenancy| {
            let tenant = tenancy.registry().resolve(&args.tenant).await?;
            if tenant.status == TenantStatus::Creating {
                // Its provisioning never finished: its database may be missing or half migrated.
                return Err(UsageError::new(
                    format!("tenant {tenant} is still being created, or its creation was interrupted"),
                    format!("delete it with `tenancy tenant delete {} --force` and create it again", tenant.id),
                )
                .into());
            }
            if tenant.status == status {
                out.status("Unchanged", format!("tenant {tenant} is already {status}"));
                return Ok(tenant);
            }
            let updated = tenancy.registry().set_status(&tenant.id, status).await?;
            out.status("Updated", format!("tenant {updated}: {} → {status}", tenant.status));
            Ok(updated)
        })
        .await?;
    if out.is_json() {
        out.json(&tenant);
    }
    Ok(ExitStatus::Success)
}
