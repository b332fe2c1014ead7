//! Where a tenant database stands: each migration applied (and when) or pending, and tracking rows
//! whose migration the binary does not know.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::{MigrationName, MigrationSet, tracking};

/// One migration's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationState {
    /// Which.
    pub migration: MigrationName,
    /// When it was applied; `None` while pending.
    pub applied_at: Option<DateTime<Utc>>,
}

/// Every migration of a tenant database, in apply order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationStatus {
    /// Known migrations.
    pub migrations: Vec<MigrationState>,
    /// Tracking rows of migrations this binary does not have (applied by a newer version, or removed).
    pub unknown: Vec<MigrationName>,
}

impl MigrationStatus {
    /// How many are applied.
    pub fn applied(&self) -> usize {
        self.migrations.iter().filter(|m| m.applied_at.is_some()).count()
    }

    /// `migrator/name` of each applied migration, in apply order.
    pub fn applied_names(&self) -> Vec<String> {
        self.migrations.iter().filter(|m| m.applied_at.is_some()).map(|m| m.migration.to_string()).collect()
    }

    /// How many are pending.
    pub fn pending(&self) -> usize {
        self.migrations.len() - self.applied()
    }
}

/// Reads the tracking tables (never creating them).
///
/// # Errors
/// When a tracking table cannot be read.
pub async fn read(db: &DatabaseConnection, set: &MigrationSet) -> Result<MigrationStatus, DbErr> {
    Ok(assemble(set, tracking::applied(db, &tracking_tables(set)).await?))
}

/// [`read`] inside a transaction (a snapshot a backup shares): asks the catalog which tracking
/// tables exist first, as a failed query would end the transaction on PostgreSQL.
///
/// # Errors
/// When a tracking table cannot be read.
pub async fn read_in(db: &impl ConnectionTrait, set: &MigrationSet) -> Result<MigrationStatus, DbErr> {
    Ok(assemble(set, tracking::applied_checking_catalog(db, &tracking_tables(set)).await?))
}

fn tracking_tables(set: &MigrationSet) -> Vec<String> {
    set.migrators().iter().map(|m| m.tracking_table()).collect()
}

fn assemble(set: &MigrationSet, recorded: Vec<std::collections::HashMap<String, i64>>) -> MigrationStatus {
    let mut status = MigrationStatus { migrations: Vec::new(), unknown: Vec::new() };
    for (migrator, mut applied) in set.migrators().iter().zip(recorded) {
        for migration in migrator.migrations() {
            let applied_at = applied.remove(migration.name()).and_then(|secs| DateTime::from_timestamp(secs, 0));
            status.migrations.push(MigrationState {
                migration: MigrationName { migrator: migrator.name().into(), name: migration.name().into() },
                applied_at,
            });
        }
        let mut unknown: Vec<String> = applied.into_keys().collect();
        unknown.sort();
        status.unknown.extend(unknown.into_iter().map(|name| MigrationName { migrator: migrator.name().into(), name }));
    }
    status
}

/// Everything `db status` shows about one tenant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantMigrationReport {
    /// The tenant.
    pub tenant: crate::Tenant,
    /// Its migrations.
    pub status: MigrationStatus,
    /// Its database's size.
    pub stats: super::stats::DatabaseStats,
    /// Its last recorded migration failure, if not cleared by a successful run since.
    pub last_failure: Option<crate::registry::RecordedFailure>,
}

/// Reading a tenant's migration status failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The tenant's database could not be opened.
    #[error(transparent)]
    Context(#[from] crate::ContextError),
    /// A query failed.
    #[error("failed to read the migration status of tenant {tenant}")]
    Query {
        /// `name (id)`.
        tenant: String,
        /// The database's error.
        source: DbErr,
    },
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] crate::RegistryError),
}

impl crate::Tenancy {
    /// The migrations, database statistics and last failure of `tenant`. Writes nothing.
    ///
    /// # Errors
    /// [`StatusError`] when the database or the registry cannot be read.
    pub async fn migration_status(&self, tenant: &crate::Tenant) -> Result<TenantMigrationReport, StatusError> {
        let set = self.migrations();
        let read = self
            .run_with_one_connection(tenant, |ctx| async move {
                Ok::<_, DbErr>((read(ctx.db(), set).await?, super::stats::measure(ctx.db()).await?))
            })
            .await?;
        let (status, stats) = read.map_err(|source| StatusError::Query { tenant: tenant.to_string(), source })?;
        let last_failure = self.registry().last_migration_failure(&tenant.id).await?;
        Ok(TenantMigrationReport { tenant: tenant.clone(), status, stats, last_failure })
    }

    /// Only which migrations of `tenant` are applied and pending: the tracking tables, no sizes
    /// and no registry query (what totals over many tenants need). Writes nothing.
    ///
    /// # Errors
    /// [`StatusError`] when the database cannot be read.
    pub async fn migration_state(&self, tenant: &crate::Tenant) -> Result<MigrationStatus, StatusError> {
        let set = self.migrations();
        self.run_with_one_connection(tenant, |ctx| async move { read(ctx.db(), set).await })
            .await?
            .map_err(|source| StatusError::Query { tenant: tenant.to_string(), source })
    }
}
