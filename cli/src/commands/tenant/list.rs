//! `tenancy tenant list`: a table for people, a JSON object per tenant for programs.

use clap::Args;
use tenancy_core::{Tenant, TenantStatus};

use crate::CliContext;
use crate::exit::ExitStatus;

/// Arguments of `tenancy tenant list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tenants with this status
    #[arg(long, value_parser = ["creating", "active", "inactive", "suspended"])]
    pub status: Option<String>,
}

pub async fn run(args: ListArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let status = args.status.as_deref().map(str::parse::<TenantStatus>).transpose()?;
    let tenants = ctx.with_tenancy(async |tenancy| Ok(tenancy.registry().list(status).await?)).await?;
    if out.is_json() {
        for tenant in &tenants {
            out.json(tenant);
        }
        return Ok(ExitStatus::Success);
    }
    if tenants.is_empty() {
        out.status(
            "Empty",
            match status {
                Some(status) => format!("no tenant has status `{status}`"),
                None => "no tenants yet; create one with `tenancy tenant create`".to_owned(),
            },
        );
        return Ok(ExitStatus::Success);
    }
    for line in table(&tenants) {
        out.data(line);
    }
    Ok(ExitStatus::Success)
}

/// Aligned columns: id, status (`(down)` in maintenance), name, primary domain (+ how many more), created.
fn table(tenants: &[Tenant]) -> Vec<String> {
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            let domain = match (t.primary_domain(), t.domains.len()) {
                (None, _) => "-".to_owned(),
                (Some(d), 1) => d.to_string(),
                (Some(d), n) => format!("{d} (+{})", n - 1),
            };
            let status = if t.maintenance.is_some() { format!("{} (down)", t.status) } else { t.status.to_string() };
            vec![t.id.to_string(), status, t.name.to_string(), domain, t.created_at.format("%Y-%m-%d %H:%M").to_string()]
        })
        .collect();
    crate::output::aligned(&["ID", "STATUS", "NAME", "DOMAIN", "CREATED"], &rows)
}
