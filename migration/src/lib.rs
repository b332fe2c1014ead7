//! The sample application's tenant migrations: what `tenancy db migrate` and `tenant create` apply
//! to every tenant database. An application replaces this crate with its own.

pub use sea_orm_migration::prelude::*;

mod m20260101_000001_create_accounts;

/// The tenant migrator handed to `tenancy_cli::App::tenant_migrator`.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20260101_000001_create_accounts::Migration)]
    }
}
