//! Migration failures the registry remembers: the tenant, the migration, the error and when, so
//! `db status` can show them after the run that hit them has ended.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entity::migration_failures;
use super::{Registry, RegistryError, parse_id};
use crate::TenantId;

/// A recorded migration failure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordedFailure {
    /// `migrator/name`.
    pub migration: String,
    /// The database's message.
    pub error: String,
    /// When it failed.
    pub failed_at: DateTime<Utc>,
}

impl Registry {
    /// Records that `migration` failed for `tenant` with `error`.
    ///
    /// # Errors
    /// When the registry cannot be written.
    pub async fn record_migration_failure(&self, tenant: &TenantId, migration: &str, error: &str) -> Result<(), RegistryError> {
        migration_failures::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            migration: Set(migration.chars().take(255).collect()),
            error: Set(error.to_owned()),
            failed_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(self.connection())
        .await
        .map(drop)
        .map_err(RegistryError::query(format!("record a migration failure of tenant `{tenant}`")))
    }

    /// Forgets a tenant's failures, once its migrations have all been applied.
    ///
    /// # Errors
    /// When the registry cannot be written.
    pub async fn clear_migration_failures(&self, tenant: &TenantId) -> Result<(), RegistryError> {
        migration_failures::Entity::delete_many()
            .filter(migration_failures::Column::TenantId.eq(tenant.to_string()))
            .exec(self.connection())
            .await
            .map(drop)
            .map_err(RegistryError::query(format!("clear the migration failures of tenant `{tenant}`")))
    }

    /// The latest failure of each tenant that has one.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn last_migration_failures(&self) -> Result<HashMap<TenantId, RecordedFailure>, RegistryError> {
        let rows = migration_failures::Entity::find()
            .order_by_asc(migration_failures::Column::Id)
            .all(self.connection())
            .await
            .map_err(RegistryError::query("read migration failures"))?;
        let mut last = HashMap::new();
        for row in rows {
            last.insert(
                parse_id(&row.tenant_id)?,
                RecordedFailure { migration: row.migration, error: row.error, failed_at: row.failed_at },
            );
        }
        Ok(last)
    }

    /// The latest failure of `tenant`, if any.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn last_migration_failure(&self, tenant: &TenantId) -> Result<Option<RecordedFailure>, RegistryError> {
        let row = migration_failures::Entity::find()
            .filter(migration_failures::Column::TenantId.eq(tenant.to_string()))
            .order_by_desc(migration_failures::Column::Id)
            .one(self.connection())
            .await
            .map_err(RegistryError::query(format!("read the migration failures of tenant `{tenant}`")))?;
        Ok(row.map(|row| RecordedFailure { migration: row.migration, error: row.error, failed_at: row.failed_at }))
    }
}
