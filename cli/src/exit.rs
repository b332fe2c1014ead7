//! Exit codes, and how an error becomes one: [`ExitStatus`], [`UsageError`] and [`report`].

use std::process::ExitCode;

use tenancy_core::database::DatabaseError;
use tenancy_core::{ConfigError, DomainError, RegistryError, TenantNameError, TenantRefError, UnknownStatus};

use crate::output::Output;

/// How `tenancy` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked: 0.
    Success,
    /// An operation failed (for at least one tenant): 1.
    Failure,
    /// Bad usage or bad input; nothing was changed: 2.
    Usage,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
        })
    }
}

/// A mistake in how `tenancy` was called that clap cannot see (a missing flag off a terminal).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    message: String,
    hint: Option<String>,
}

impl UsageError {
    /// A usage error with a hint saying what to type instead.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { message: message.into(), hint: Some(hint.into()) }
    }
}

/// Whether `err` was caused by what the user typed (exit 2) rather than by a failure (exit 1).
fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<ConfigError>()
            || cause.is::<DomainError>()
            || cause.is::<TenantNameError>()
            || cause.is::<UnknownStatus>()
            || cause.downcast_ref::<TenantRefError>().is_some_and(TenantRefError::is_bad_input)
            || cause.downcast_ref::<RegistryError>().is_some_and(RegistryError::is_bad_input)
    })
}

/// What to do next, for the errors where we know.
fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut hints = Vec::new();
    for cause in err.chain() {
        if let Some(usage) = cause.downcast_ref::<UsageError>() {
            hints.extend(usage.hint.clone());
        } else if let Some(tenant_ref) = cause.downcast_ref::<TenantRefError>() {
            match tenant_ref {
                TenantRefError::Unknown { .. } | TenantRefError::Empty => hints.push("list tenants with `tenancy tenant list`".into()),
                TenantRefError::Ambiguous { .. } => hints.push("name the tenant by its full id, or a longer id prefix".into()),
                TenantRefError::Registry(_) => {}
            }
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
