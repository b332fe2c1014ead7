//! The sample application's tenant migrations: what `tenancy db migrate` and `tenant create` apply
//! to every tenant database. An application replaces this crate with its own.

pub use sea_orm_migration::prelude::*;

mod m20260101_000001_create_accounts;
mod m20260101_000002_create_countries;
mod m20260101_000003_create_airlines;
mod m20260101_000004_create_airports;
mod m20260101_000005_create_users;
mod m20260101_000006_index_users_created_at;
mod m20260101_000007_create_routes;
mod m20260101_000008_add_countries_continent;
mod m20260101_000009_add_accounts_plan;
mod m20260101_000010_create_api_tokens;
mod m20260101_000011_index_airports_country_name;

/// The tenant migrator handed to `tenancy_cli::App::tenant_migrator`.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_create_accounts::Migration),
            Box::new(m20260101_000002_create_countries::Migration),
            Box::new(m20260101_000003_create_airlines::Migration),
            Box::new(m20260101_000004_create_airports::Migration),
            Box::new(m20260101_000005_create_users::Migration),
            Box::new(m20260101_000006_index_users_created_at::Migration),
            Box::new(m20260101_000007_create_routes::Migration),
            Box::new(m20260101_000008_add_countries_continent::Migration),
            Box::new(m20260101_000009_add_accounts_plan::Migration),
            Box::new(m20260101_000010_create_api_tokens::Migration),
            Box::new(m20260101_000011_index_airports_country_name::Migration),
        ]
    }
}
