//! `tenancy tenant show TENANT`: everything the registry knows about one tenant.

use clap::Args;
use tenancy_core::maintenance::MaintenanceOrigin;

use crate::CliContext;
use crate::exit::ExitStatus;

/// Arguments of `tenancy tenant show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The tenant: id, id prefix (8+ characters), domain or name
    pub tenant: String,
}

pub async fn run(args: ShowArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let (tenant, location) = ctx
        .with_tenancy(async |tenancy| {
            let tenant = tenancy.registry().resolve(&args.tenant).await?;
            let location = tenancy.manager_of(&tenant).map(|manager| manager.location(&tenant.database)).ok();
            Ok((tenant, location))
        })
        .await?;
    if out.is_json() {
        out.json(&tenant);
        return Ok(ExitStatus::Success);
    }
    let domains = if tenant.domains.is_empty() {
        "-".to_owned()
    } else {
        tenant
            .domains
            .iter()
            .map(|d| if d.primary { format!("{} (primary)", d.domain) } else { d.domain.to_string() })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let maintenance = match &tenant.maintenance {
        None => "-".to_owned(),
        Some(down) => {
            let by = match down.origin {
                MaintenanceOrigin::Operator => "the operator",
                MaintenanceOrigin::Migration => "db migrate --down-during",
                MaintenanceOrigin::Move => "tenant move",
            };
            let bypass = if down.has_bypass() { ", bypass secret set" } else { "" };
            let message = down.message.as_deref().map(|m| format!(": {m:?}")).unwrap_or_default();
            format!(
                "down since {} by {by}, Retry-After {} s{bypass}{message}",
                down.since.format("%Y-%m-%d %H:%M:%S UTC"),
                down.retry_after_secs
            )
        }
    };
    let fields = [
        ("id", tenant.id.to_string()),
        ("name", tenant.name.to_string()),
        ("status", tenant.status.to_string()),
        ("domains", domains),
        ("database", tenant.database.to_string()),
        ("server", tenant.server.clone()),
        ("location", location.unwrap_or_else(|| "-".into())),
        ("maintenance", maintenance),
        ("homepage", if tenant.homepage_enabled { "enabled" } else { "disabled" }.into()),
        ("data", tenant.data.to_string()),
        ("created", tenant.created_at.to_rfc3339()),
        ("updated", tenant.updated_at.to_rfc3339()),
    ];
    for (key, value) in fields {
        out.data(format!("{key:<13}{value}"));
    }
    Ok(ExitStatus::Success)
}
