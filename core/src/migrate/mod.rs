//! Tenant migrations: which migrations a tenant database gets ([`MigrationSet`]), how they are applied
//! one at a time with timings ([`runner`]), what state a tenant is in ([`status`]), and how one
//! operation runs over many tenants at once without one failure stopping the others ([`fleet`]).
//!
//! The runner uses sea-orm-migration's `MigrationTrait` objects and its tracking-table format
//! (`version`, `applied_at`), so a tenant database stays readable by sea-orm-migration's own tools.
//! It applies each migration in its own transaction (except on MySQL, whose DDL commits implicitly)
//! and reads the tracking table once per tenant, where calling `Migrator::up(db, Some(1))` in a loop
//! would re-read it and re-run `CREATE TABLE IF NOT EXISTS` before every migration.

mod core_tables;
pub mod fleet;
mod lock;
mod meter;
pub mod runner;
pub mod stats;
pub mod status;
pub mod tracking;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub use core_tables::CoreTablesMigrator;
pub(crate) use core_tables::{BinaryCacheKeys, CreateCache};
pub use meter::AllocationMeter;

/// A migrator: its migrations in order and the table that records which are applied.
///
/// Implemented for any sea-orm-migration [`MigratorTrait`] type through [`SeaOrmMigrator`].
pub trait TenantMigrator: Send + Sync {
    /// A short name for output: `tenancy` for core's tables, `app` for the application's.
    fn name(&self) -> &str;
    /// The tracking table. Each migrator needs its own: a row whose migration a migrator does not
    /// know makes sea-orm-migration refuse to run.
    fn tracking_table(&self) -> String;
    /// The migrations, oldest first.
    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>>;
}

/// A [`TenantMigrator`] over a sea-orm-migration [`MigratorTrait`] type.
pub struct SeaOrmMigrator<M> {
    name: &'static str,
    migrator: PhantomData<fn() -> M>,
}

impl<M> SeaOrmMigrator<M> {
    /// Wraps `M`, shown in output as `name`.
    pub fn named(name: &'static str) -> Self {
        Self { name, migrator: PhantomData }
    }
}

impl<M> Default for SeaOrmMigrator<M> {
    /// The application's migrator, shown as `app`.
    fn default() -> Self {
        Self::named("app")
    }
}

impl<M: MigratorTrait + 'static> TenantMigrator for SeaOrmMigrator<M> {
    fn name(&self) -> &str {
        self.name
    }

    fn tracking_table(&self) -> String {
        M::migration_table_name().to_string()
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        M::migrations()
    }
}

/// Every migrator a tenant database gets, in the order they are applied: core's own tables first,
/// then the application's, then plugins'. Rolling back goes the other way.
#[derive(Clone)]
pub struct MigrationSet {
    migrators: Vec<Arc<dyn TenantMigrator>>,
}

impl MigrationSet {
    /// Core's tables, then `app` if given.
    pub fn new(app: Option<Arc<dyn TenantMigrator>>) -> Self {
        let mut migrators: Vec<Arc<dyn TenantMigrator>> = vec![Arc::new(CoreTablesMigrator)];
        migrators.extend(app);
        Self { migrators }
    }

    /// Adds `migrators` (a plugin's) after those already in the set.
    #[must_use]
    pub fn with(mut self, migrators: impl IntoIterator<Item = Arc<dyn TenantMigrator>>) -> Self {
        self.migrators.extend(migrators);
        self
    }

    /// The migrators, in apply order.
    pub fn migrators(&self) -> &[Arc<dyn TenantMigrator>] {
        &self.migrators
    }

    /// How many migrations the set holds, every migrator's together: what a database migrated
    /// with the whole set carries.
    pub fn migration_count(&self) -> usize {
        self.migrators.iter().map(|migrator| migrator.migrations().len()).sum()
    }
}

/// A migration, named as users see it: `app/m20260101_000001_create_accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct MigrationName {
    /// The migrator (`tenancy` or `app`).
    pub migrator: String,
    /// The migration.
    pub name: String,
}

impl std::fmt::Display for MigrationName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.migrator, self.name)
    }
}

/// Which way a migration ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applied (`up`).
    Up,
    /// Rolled back (`down`).
    Down,
}

/// One migration run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationRun {
    /// Which.
    pub migration: MigrationName,
    /// Up or down.
    pub direction: Direction,
    /// How long it took.
    #[serde(serialize_with = "serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
    /// Bytes allocated while it ran, when the binary can measure it.
    pub allocated_bytes: Option<u64>,
}

pub(crate) fn serialize_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1e6).round() / 1e3)
}
