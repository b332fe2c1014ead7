//! [`TenantMigrator`]: the application's sea-orm-migration migrator, behind a trait object so the
//! `App` builder can hold any `MigratorTrait` type, applied one migration at a time so each can be
//! timed and reported (sea-orm-migration has no progress hook of its own).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

/// Applies a set of migrations to one tenant database.
///
/// # Errors
/// The migration's own [`DbErr`]; migrations before it stay applied.
#[async_trait]
pub trait TenantMigrator: Send + Sync {
    /// Names of the migrations not yet applied, in order. Never writes (no tracking table is created).
    async fn pending(&self, db: &DatabaseConnection) -> Result<Vec<String>, DbErr>;

    /// Applies the next pending migration.
    async fn apply_next(&self, db: &DatabaseConnection) -> Result<(), DbErr>;
}

/// A [`TenantMigrator`] over a sea-orm-migration [`MigratorTrait`] type.
pub struct SeaOrmMigrator<M>(PhantomData<fn() -> M>);

impl<M> Default for SeaOrmMigrator<M> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

#[async_trait]
impl<M: MigratorTrait + 'static> TenantMigrator for SeaOrmMigrator<M> {
    async fn pending(&self, db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
        Ok(M::get_pending_migrations_read_only(db).await?.iter().map(|m| m.name().to_owned()).collect())
    }

    async fn apply_next(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        M::up(db, Some(1)).await
    }
}

/// One migration applied: its name and how long it took.
#[derive(Debug, Clone)]
pub struct AppliedMigration {
    /// The migration's name.
    pub name: String,
    /// Time taken.
    pub duration: Duration,
}

/// A migration that failed, after `applied` ones succeeded.
#[derive(Debug, thiserror::Error)]
#[error("migration `{migration}` failed")]
pub struct MigrationFailed {
    /// The failing migration.
    pub migration: String,
    /// The ones applied before it in this run.
    pub applied: Vec<AppliedMigration>,
    /// The database's error.
    pub source: DbErr,
}

/// Applies every pending migration of `migrator`, one at a time.
///
/// # Errors
/// [`MigrationFailed`] naming the migration.
pub async fn migrate_all(migrator: &dyn TenantMigrator, db: &DatabaseConnection) -> Result<Vec<AppliedMigration>, MigrationFailed> {
    let pending = migrator.pending(db).await.map_err(|source| MigrationFailed {
        migration: "(reading migration status)".into(),
        applied: Vec::new(),
        source,
    })?;
    let mut applied = Vec::with_capacity(pending.len());
    for name in pending {
        let started = Instant::now();
        if let Err(source) = migrator.apply_next(db).await {
            return Err(MigrationFailed { migration: name, applied, source });
        }
        applied.push(AppliedMigration { name, duration: started.elapsed() });
    }
    Ok(applied)
}
