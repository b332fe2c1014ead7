//! `tenancy tenant …`: the life cycle of one tenant.

mod create;
mod delete;
mod domain;
mod list;
mod show;
mod status;

use clap::Subcommand;

use crate::CliContext;
use crate::exit::ExitStatus;

/// `tenancy tenant` subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant: registry row, database, migrations, then active
    Create(create::CreateArgs),
    /// List tenants
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// Show one tenant
    Show(show::ShowArgs),
    /// Set a tenant's status to active
    Activate(status::StatusArgs),
    /// Set a tenant's status to inactive
    Deactivate(status::StatusArgs),
    /// Set a tenant's status to suspended
    Suspend(status::StatusArgs),
    /// Delete a tenant and drop its database
    #[command(visible_alias = "rm")]
    Delete(delete::DeleteArgs),
    /// Add or remove a tenant's domains
    #[command(subcommand)]
    Domain(domain::DomainCommand),
}

pub async fn run(command: TenantCommand, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    use tenancy_core::TenantStatus::{Active, Inactive, Suspended};
    match command {
        TenantCommand::Create(args) => create::run(args, ctx).await,
        TenantCommand::List(args) => list::run(args, ctx).await,
        TenantCommand::Show(args) => show::run(args, ctx).await,
        TenantCommand::Activate(args) => status::run(args, Active, ctx).await,
        TenantCommand::Deactivate(args) => status::run(args, Inactive, ctx).await,
        TenantCommand::Suspend(args) => status::run(args, Suspended, ctx).await,
        TenantCommand::Delete(args) => delete::run(args, ctx).await,
        TenantCommand::Domain(command) => domain::run(command, ctx).await,
    }
}
