//! Core's own tables in every tenant database (cache entries and sessions), with their own migrator
//! and tracking table `tenancy_migrations`, so they never mix with the application's migrations.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

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
        vec![Box::new(CreateCache), Box::new(CreateSessions), Box::new(BinaryCacheKeys), Box::new(BinarySessionIds)]
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

/// On MySQL and MariaDB, `tenancy_cache.key` compares bytes: under the database's `utf8mb4_unicode_ci`,
/// `profile:Bob` would be `profile:bob`, `résumé` would be `resume` and `a` would be `a `, so one
/// user's entry would be another's. (SQLite and PostgreSQL compare text exactly already.) Also run
/// on the registry's database, for the central cache.
pub(crate) struct BinaryCacheKeys;

impl MigrationName for BinaryCacheKeys {
    fn name(&self) -> &str {
        "m0003_tenancy_cache_binary_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for BinaryCacheKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        modify_on_mysql(manager, "ALTER TABLE tenancy_cache MODIFY `key` VARBINARY(255) NOT NULL").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        modify_on_mysql(manager, "ALTER TABLE tenancy_cache MODIFY `key` VARCHAR(255) NOT NULL").await
    }
}

/// As [`BinaryCacheKeys`], for session ids.
struct BinarySessionIds;

impl MigrationName for BinarySessionIds {
    fn name(&self) -> &str {
        "m0004_tenancy_sessions_binary_ids"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for BinarySessionIds {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        modify_on_mysql(manager, "ALTER TABLE tenancy_sessions MODIFY id VARBINARY(128) NOT NULL").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        modify_on_mysql(manager, "ALTER TABLE tenancy_sessions MODIFY id VARCHAR(128) NOT NULL").await
    }
}

/// `VARBINARY`, not a `_bin` collation: those pad with spaces (`a` = `a `) on MariaDB.
async fn modify_on_mysql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DbBackend::MySql {
        return Ok(());
    }
    manager.get_connection().execute_unprepared(sql).await.map(drop)
}
