//! `tenancy tenant down|up TENANT`: maintenance mode, recorded in the registry and enforced by
//! the web layer of every process serving the tenant.

use clap::Args;
use tenancy_core::maintenance::{BypassSecret, Maintenance, MaintenanceOrigin};

use crate::CliContext;
use crate::exit::ExitStatus;

/// Arguments of `tenancy tenant down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// The tenant: id, id prefix (8+ characters), domain or name
    pub tenant: String,
    /// Shown to visitors under "This site is down for maintenance." (at most 500 characters)
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Seconds clients are told to wait before trying again (the `Retry-After` header)
    #[arg(long, value_name = "SECS", default_value_t = tenancy_core::maintenance::DEFAULT_RETRY_AFTER_SECS)]
    pub retry_after: u32,
    /// Let people through who visit `/{SECRET}` once (it sets a cookie); 8–128 characters of
    /// A-Z a-z 0-9 _ -. Only its hash is stored
    #[arg(long, value_name = "SECRET", env = "TENANCY_BYPASS_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

/// Arguments of `tenancy tenant up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The tenant: id, id prefix (8+ characters), domain or name
    pub tenant: String,
}

pub async fn down(args: DownArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    // Checked before anything is read, so bad input changes nothing.
    let mut maintenance = Maintenance::new(MaintenanceOrigin::Operator).with_retry_after(args.retry_after);
    if let Some(message) = &args.message {
        maintenance = maintenance.with_message(message)?;
    }
    if let Some(secret) = &args.secret {
        maintenance = maintenance.with_bypass(&BypassSecret::parse(secret)?);
    }
    let out = ctx.out;
    let tenant = ctx
        .with_tenancy(async |tenancy| {
            let tenant = super::provisioned(tenancy, &args.tenant).await?;
            let verb = if tenant.maintenance.is_some() { "Updated" } else { "Down" };
            let tenant = tenancy.registry().set_maintenance(&tenant.id, Some(&maintenance)).await?;
            let bypass = if maintenance.has_bypass() { ", bypass at /SECRET" } else { "" };
            out.status(verb, format!("tenant {tenant} answers 503 (Retry-After: {} s){bypass}", maintenance.retry_after_secs));
            Ok(tenant)
        })
        .await?;
    if out.is_json() {
        out.json(&tenant);
    }
    Ok(ExitStatus::Success)
}

pub async fn up(args: UpArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let tenant = ctx
        .with_tenancy(async |tenancy| {
            let tenant = tenancy.registry().resolve(&args.tenant).await?;
            if tenant.maintenance.is_none() {
                out.status("Unchanged", format!("tenant {tenant} is not down for maintenance"));
                return Ok(tenant);
            }
            let tenant = tenancy.registry().set_maintenance(&tenant.id, None).await?;
            out.status("Up", format!("tenant {tenant} is served again"));
            Ok(tenant)
        })
        .await?;
    if out.is_json() {
        out.json(&tenant);
    }
    Ok(ExitStatus::Success)
}
