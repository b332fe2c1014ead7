//! `tenancy tenant …`: the life cycle of one tenant.

mod create;
mod credentials;
mod delete;
mod domain;
mod list;
mod maintenance;
mod pool;
mod relocate;
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
    /// Take a tenant down for maintenance: its requests get 503 with Retry-After
    Down(maintenance::DownArgs),
    /// Bring a tenant back from maintenance
    Up(maintenance::UpArgs),
    /// Delete a tenant and drop its database
    #[command(visible_alias = "rm")]
    Delete(delete::DeleteArgs),
    /// Add or remove a tenant's domains
    #[command(subcommand)]
    Domain(domain::DomainCommand),
    /// Show, fill or drain the pool of ready databases signups take (provision = "pool")
    Pool(pool::PoolArgs),
    /// Move a tenant to another database server (down, copy, check, switch, up); resumable
    Move(relocate::MoveArgs),
    /// Make tenants' own database roles and give them their databases (roles = "per_tenant");
    /// for tenants made before roles. Idempotent: run it again to resume or repair
    Secure(credentials::RoleArgs),
    /// Give tenants' roles new passwords; pools on the old ones are replaced
    RotateCredentials(credentials::RoleArgs),
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
        TenantCommand::Down(args) => maintenance::down(args, ctx).await,
        TenantCommand::Up(args) => maintenance::up(args, ctx).await,
        TenantCommand::Delete(args) => delete::run(args, ctx).await,
        TenantCommand::Domain(command) => domain::run(command, ctx).await,
        TenantCommand::Pool(args) => pool::run(args, ctx).await,
        TenantCommand::Move(args) => relocate::run(args, ctx).await,
        TenantCommand::Secure(args) => credentials::run(args, credentials::RoleWork::Secure, ctx).await,
        TenantCommand::RotateCredentials(args) => credentials::run(args, credentials::RoleWork::Rotate, ctx).await,
    }
}

/// The tenant named by `reference`, refused while it is still being created (its database may be
/// missing or half migrated).
async fn provisioned(tenancy: &tenancy_core::Tenancy, reference: &str) -> anyhow::Result<tenancy_core::Tenant> {
    let tenant = tenancy.registry().resolve(reference).await?;
    if tenant.status == tenancy_core::TenantStatus::Creating {
        return Err(crate::exit::UsageError::new(
            format!("tenant {tenant} is still being created, or its creation was interrupted"),
            format!("delete it with `tenancy tenant delete {} --force` and create it again", tenant.id),
        )
        .into());
    }
    Ok(tenant)
}
