//! The registry's own migrations, tracked in `tenancy_registry_migrations` so they never mix with an
//! application's migrations in the same database.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Runs the registry's migrations.
pub struct RegistryMigrator;

#[async_trait::async_trait]
impl MigratorTrait for RegistryMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        // The central cache's table is the very migration each tenant database gets.
        vec![
            Box::new(CreateTenantsAndDomains),
            Box::new(CreateMigrationFailures),
            Box::new(crate::migrate::CreateCache),
            Box::new(CreateRedisDatabases),
            Box::new(crate::migrate::BinaryCacheKeys),
            Box::new(CreateRegistryVersion),
            Box::new(AddTenantMaintenance),
            Box::new(AddTenantMigratedSet),
            Box::new(CreateServers),
            Box::new(CreateTenantMoves),
            Box::new(AddTenantCredentialsGeneration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "tenancy_registry_migrations".into_iden()
    }
}

/// `table.tenant_id` references `tenants.id`, and goes with the tenant: deleting a tenant's row
/// removes its rows here too. Named `{table}_tenant_fk`.
fn belongs_to_tenant(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("{table}_tenant_fk"))
        .from(table, "tenant_id")
        .to("tenants", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

struct CreateTenantsAndDomains;

impl MigrationName for CreateTenantsAndDomains {
    fn name(&self) -> &str {
        "m0001_create_tenants_and_domains"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTenantsAndDomains {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenants")
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("name", 255))
                    .col(string_len("status", 16))
                    .col(boolean("homepage_enabled").default(false))
                    .col(string_len("database", 64))
                    .col(string_len("server", 64))
                    .col(json("data"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("tenants_status_idx").table("tenants").col("status").to_owned()).await?;
        manager.create_index(Index::create().name("tenants_name_idx").table("tenants").col("name").to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table("domains")
                    .col(pk_auto("id"))
                    .col(string_len_uniq("domain", 253))
                    .col(string_len("tenant_id", 36))
                    .col(boolean("is_primary").default(false))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut belongs_to_tenant("domains"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("domains_tenant_idx").table("domains").col("tenant_id").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("domains").to_owned()).await?;
        manager.drop_table(Table::drop().table("tenants").to_owned()).await
    }
}

struct CreateMigrationFailures;

impl MigrationName for CreateMigrationFailures {
    fn name(&self) -> &str {
        "m0002_create_tenant_migration_failures"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateMigrationFailures {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenant_migration_failures")
                    .col(pk_auto("id"))
                    .col(string_len("tenant_id", 36))
                    .col(string_len("migration", 255))
                    .col(text("error"))
                    .col(timestamp_with_time_zone("failed_at"))
                    .foreign_key(&mut belongs_to_tenant("tenant_migration_failures"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("tenant_migration_failures_tenant_idx").table("tenant_migration_failures").col("tenant_id").to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("tenant_migration_failures").to_owned()).await
    }
}

struct CreateRedisDatabases;

impl MigrationName for CreateRedisDatabases {
    fn name(&self) -> &str {
        "m0004_create_tenant_redis_databases"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRedisDatabases {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenant_redis_databases")
                    .col(string_len("tenant_id", 36).primary_key())
                    .col(integer_uniq("db_index"))
                    .foreign_key(&mut belongs_to_tenant("tenant_redis_databases"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("tenant_redis_databases").to_owned()).await
    }
}

struct CreateRegistryVersion;

impl MigrationName for CreateRegistryVersion {
    fn name(&self) -> &str {
        "m0005_create_tenancy_registry_version"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRegistryVersion {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = super::changes::TABLE;
        manager.create_table(Table::create().table(table).col(integer("id").primary_key()).col(big_integer("version")).to_owned()).await?;
        manager.exec_stmt(Query::insert().into_table(table).columns(["id", "version"]).values_panic([1.into(), 0.into()]).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(super::changes::TABLE).to_owned()).await
    }
}

struct AddTenantMaintenance;

impl MigrationName for AddTenantMaintenance {
    fn name(&self) -> &str {
        "m0006_add_tenant_maintenance"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddTenantMaintenance {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // NULL: serving. A JSON object (`crate::maintenance::Maintenance`): down for maintenance.
        manager.alter_table(Table::alter().table("tenants").add_column(json_null("maintenance")).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("tenants").drop_column("maintenance").to_owned()).await
    }
}

struct AddTenantMigratedSet;

impl MigrationName for AddTenantMigratedSet {
    fn name(&self) -> &str {
        "m0007_add_tenant_migrated_set"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddTenantMigratedSet {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The migration set (its fingerprint) `db migrate` last brought the tenant's database up to
        // date with; NULL when unknown. `schema_epoch` moves on whenever a schema may move back, so a
        // record made by a run that read an older epoch cannot land (one column per statement: SQLite).
        manager.alter_table(Table::alter().table("tenants").add_column(string_len_null("migrated_set", 16)).to_owned()).await?;
        manager.alter_table(Table::alter().table("tenants").add_column(big_integer("schema_epoch").default(0)).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("tenants").drop_column("schema_epoch").to_owned()).await?;
        manager.alter_table(Table::alter().table("tenants").drop_column("migrated_set").to_owned()).await
    }
}

struct CreateServers;

impl MigrationName for CreateServers {
    fn name(&self) -> &str {
        "m0008_create_tenancy_servers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateServers {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The state of each server an operator changed (`tenancy server drain`); a server with no
        // row is active. Servers themselves are configured, not registered.
        let table = super::servers::TABLE;
        manager
            .create_table(
                Table::create()
                    .table(table)
                    .col(string_len("name", crate::config::MAX_SERVER_NAME as u32).primary_key())
                    .col(string_len("state", 16))
                    .col(timestamp_with_time_zone("changed_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(super::servers::TABLE).to_owned()).await
    }
}

struct CreateTenantMoves;

impl MigrationName for CreateTenantMoves {
    fn name(&self) -> &str {
        "m0009_create_tenancy_tenant_moves"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTenantMoves {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per tenant being moved (`tenancy tenant move`), or moved with its old database
        // still kept: where the move stands, so a rerun resumes it.
        let table = super::moves::TABLE;
        let server = crate::config::MAX_SERVER_NAME as u32;
        manager
            .create_table(
                Table::create()
                    .table(table)
                    .col(string_len("tenant_id", 36).primary_key())
                    .col(string_len("from_server", server))
                    .col(string_len("to_server", server))
                    .col(string_len("step", 16))
                    .col(boolean("down_by_move"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("keep_source_until"))
                    .foreign_key(&mut belongs_to_tenant(table))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(super::moves::TABLE).to_owned()).await
    }
}

struct AddTenantCredentialsGeneration;

impl MigrationName for AddTenantCredentialsGeneration {
    fn name(&self) -> &str {
        "m0010_add_tenant_credentials_generation"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddTenantCredentialsGeneration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // With a role per tenant, its password is derived from the role key and this number, which
        // `tenant rotate-credentials` moves on: no password is stored.
        manager.alter_table(Table::alter().table("tenants").add_column(big_integer("credentials_generation").default(0)).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("tenants").drop_column("credentials_generation").to_owned()).await
    }
}
