//! Migrators for tests of how migrations fail and resume: a sea-orm-migration `MigratorTrait`
//! each, as an application would write them.

use sea_orm_migration::prelude::*;

/// `things`, then a migration that fails (it creates `things` again).
pub struct BrokenMigrator;

impl MigratorTrait for BrokenMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateThings), Box::new(Broken)]
    }
}

/// Only `things`: what an older release of the application had.
pub struct OlderMigrator;

impl MigratorTrait for OlderMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateThings)]
    }
}

/// The next release of [`OlderMigrator`]'s application: `things`, then `widgets`.
pub struct NewerMigrator;

impl MigratorTrait for NewerMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateThings), Box::new(CreateWidgets)]
    }
}

/// An application without migrations (yet).
pub struct NoMigrations;

impl MigratorTrait for NoMigrations {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        Vec::new()
    }
}

struct CreateThings;

impl MigrationName for CreateThings {
    fn name(&self) -> &str {
        "m1_create_things"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateThings {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(Table::create().table("things").col(ColumnDef::new("id").integer().primary_key()).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("things").to_owned()).await
    }
}

struct Broken;

impl MigrationName for Broken {
    fn name(&self) -> &str {
        "m2_broken"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Broken {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("CREATE TABLE things (id INTEGER)").await.map(drop)
    }
}

struct CreateWidgets;

impl MigrationName for CreateWidgets {
    fn name(&self) -> &str {
        "m2_create_widgets"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateWidgets {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(Table::create().table("widgets").col(ColumnDef::new("id").integer().primary_key()).to_owned()).await?;
        manager.create_index(Index::create().name("widgets_id_idx").table("widgets").col("id").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("widgets").to_owned()).await
    }
}

/// `things`, then a migration that needs more than a tenant's own role may do: it creates a role
/// (`tenancy_test_never_made`, which no test expects to exist).
pub struct OverreachingMigrator;

impl MigratorTrait for OverreachingMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateThings), Box::new(Overreaching)]
    }
}

struct Overreaching;

impl MigrationName for Overreaching {
    fn name(&self) -> &str {
        "m2_create_a_role"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Overreaching {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("CREATE ROLE tenancy_test_never_made").await.map(drop)
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
