//! How an error becomes an exit code and a message: [`report`]. [`ExitStatus`] and [`UsageError`]
//! live in core, so that plugin commands can use them too.

use tenancy_core::database::DatabaseError;
use tenancy_core::{ConfigError, DomainError, RegistryError, TenantNameError, TenantRefError, UnknownStatus};

use crate::output::Output;

pub use tenancy_core::command::{ExitStatus, UsageError};

/// Whether `err` was caused by what the user typed (exit 2) rather than by a failure (exit 1).
fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<ConfigError>()
            || cause.is::<DomainError>()
            || cause.is::<TenantNameError>()
            || cause.is::<UnknownStatus>()
            || cause.is::<tenancy_core::maintenance::MaintenanceError>()
            || cause.downcast_ref::<TenantRefError>().is_some_and(TenantRefError::is_bad_input)
            || cause.downcast_ref::<RegistryError>().is_some_and(RegistryError::is_bad_input)
            || cause.downcast_ref::<DatabaseError>().is_some_and(|err| matches!(err, DatabaseError::RoleKey(_) | DatabaseError::NoRoles(_)))
            || cause.downcast_ref::<tenancy_core::queue::QueueError>().is_some_and(tenancy_core::queue::QueueError::is_bad_input)
    })
}

/// What to do next, for the errors where we know.
fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut hints = Vec::new();
    for cause in err.chain() {
        if let Some(usage) = cause.downcast_ref::<UsageError>() {
            hints.extend(usage.hint().map(str::to_owned));
        } else if let Some(tenant_ref) = cause.downcast_ref::<TenantRefError>() {
            match tenant_ref {
                TenantRefError::Unknown { .. } | TenantRefError::Empty => hints.push("list tenants with `tenancy tenant list`".into()),
                TenantRefError::Ambiguous { .. } => hints.push("name the tenant by its full id, or a longer id prefix".into()),
                TenantRefError::Registry(_) => {}
            }
        } else if let Some(ConfigError::SqlFiles(_)) = cause.downcast_ref::<ConfigError>() {
            hints.push("migrations are `migrations/NNNN_name.up.sql` with a `.down.sql` each, seeders `seeders/NAME.sql`; `tenancy init --sql` writes examples".into());
        } else if cause.is::<ConfigError>() {
            hints.push("every key is described in the README's configuration reference; `tenancy init` writes a commented file".into());
        } else if let Some(DatabaseError::Connect { .. }) = cause.downcast_ref::<DatabaseError>() {
            hints.push("check that the server is running and that `tenant_database.servers` points at it".into());
        } else if let Some(RegistryError::Connect { .. }) = cause.downcast_ref::<RegistryError>() {
            hints.push("check `central.url`; on a server, `tenancy init` creates the registry database".into());
        }
    }
    hints.dedup();
    hints
}

/// Prints `err` once, with its causes and hints, and says which exit status it means.
pub fn report(out: &Output, err: &anyhow::Error) -> ExitStatus {
    let mut chain = err.chain().map(ToString::to_string);
    let message = chain.next().unwrap_or_default();
    let causes: Vec<String> = chain.collect();
    out.error(&message, &causes, &hints(err));
    if is_bad_input(err) { ExitStatus::Usage } else { ExitStatus::Failure }
}
