//! `tenancy tenant domain add|remove TENANT DOMAIN`.

use clap::{Args, Subcommand};
use tenancy_core::Domain;

use crate::CliContext;
use crate::exit::ExitStatus;

/// `tenancy tenant domain` subcommands.
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a domain to a tenant
    Add(AddArgs),
    /// Remove a domain from a tenant
    #[command(visible_alias = "rm")]
    Remove(RemoveArgs),
}

/// Arguments of `tenancy tenant domain add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The tenant: id, id prefix (8+ characters), domain or name
    pub tenant: String,
    /// The domain to add
    pub domain: String,
    /// Make it the tenant's primary domain
    #[arg(long)]
    pub primary: bool,
}

/// Arguments of `tenancy tenant domain remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The tenant: id, id prefix (8+ characters), domain or name
    pub tenant: String,
    /// The domain to remove
    pub domain: String,
}

pub async fn run(command: DomainCommand, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    // Check the domain before touching the registry: a malformed one changes nothing.
    let (tenant_ref, domain) = match &command {
        DomainCommand::Add(args) => (&args.tenant, Domain::parse(&args.domain)?),
        DomainCommand::Remove(args) => (&args.tenant, Domain::parse(&args.domain)?),
    };
    let tenant = ctx
        .with_tenancy(async |tenancy| {
            let tenant = tenancy.registry().resolve(tenant_ref).await?;
            let updated = match &command {
                DomainCommand::Add(args) => {
                    let updated = tenancy.registry().add_domain(&tenant, &domain, args.primary).await?;
                    out.status("Added", format!("domain `{domain}` to tenant {tenant}"));
                    updated
                }
                DomainCommand::Remove(_) => {
                    let (updated, notes) = tenancy.remove_domain(&tenant, &domain).await?;
                    out.status("Removed", format!("domain `{domain}` from tenant {tenant}"));
                    for note in notes {
                        out.line(note);
                    }
                    updated
                }
            };
            Ok(updated)
        })
        .await?;
    if out.is_json() {
        out.json(&tenant);
    }
    Ok(ExitStatus::Success)
}
