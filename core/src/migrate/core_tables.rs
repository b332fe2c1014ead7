//! Core's own tables in every tenant database (cache entries and sessions), with their own migrator
//! and tracking table `tenancy_migrations`, so they never mix with the application's migrations.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use super::TenantMigrator;

/// The migrator of core's tenant tables.
pub struct CoreTablesMigrator;

impl TenantMigrator for CoreTablesMigrator {
    fn name(&self) -> &str {
        "tenancy"
    }

    fn tracking_table(&self) -> String {
        "tenancy_migrations".into()
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateCache), Box::new(CreateSessions)]
    }
}

/// `tenancy_cache`; also created in the registry's database for the central cache.
pub(crate) struct CreateCache;

impl MigrationName for CreateCache {
    fn name(&self) -> &str {
        "m0001_create_tenancy_cache"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateCache {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenancy_cache")
                    .col(string_len("key", 255).primary_key())
                    .col(blob("value"))
                    .col(big_integer_null("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("tenancy_cache_expires_idx").table("tenancy_cache").col("expires_at").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("tenancy_cache").to_owned()).await
    }
}

struct CreateSessions;

impl MigrationName for CreateSessions {
    fn name(&self) -> &str {
        "m0002_create_tenancy_sessions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSessions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenancy_sessions")
                    .col(string_len("id", 128).primary_key())
                    .col(blob("data"))
                    .col(big_integer("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("tenancy_sessions_expires_idx").table("tenancy_sessions").col("expires_at").to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("tenancy_sessions").to_owned()).await
    }
}
