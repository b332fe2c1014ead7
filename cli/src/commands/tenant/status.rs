//! `tenancy tenant activate|deactivate|suspend TENANT`.

use clap::Args;
use tenancy_core::TenantStatus;

use crate::CliContext;
use crate::exit::ExitStatus;

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
            let tenant = super::provisioned(tenancy, &args.tenant).await?;
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
