//! PostgreSQL: a database per tenant ([`PostgresDatabaseManager`]) or a schema per tenant in one
//! shared database ([`PostgresSchemaManager`]).

use async_trait::async_trait;
use sea_orm::{ConnectOptions, DatabaseConnection};

use super::admin::ServerAdmin;
use super::manager::{PoolSettings, connect};
use super::{DatabaseError, DatabaseManager, DatabaseName, Driver, ServerUrl};

/// PostgreSQL's SQLSTATE for "database (or schema) already exists".
const DUPLICATE_DATABASE: &str = "42P04";
const DUPLICATE_SCHEMA: &str = "42P06";

/// A database per tenant on one PostgreSQL server.
#[derive(Debug)]
pub struct PostgresDatabaseManager {
    admin: ServerAdmin,
}

impl PostgresDatabaseManager {
    pub(crate) fn new(url: ServerUrl, settings: PoolSettings) -> Self {
        Self { admin: ServerAdmin::new(url, settings) }
    }
}

#[async_trait]
impl DatabaseManager for PostgresDatabaseManager {
    fn driver(&self) -> Driver {
        Driver::Postgres
    }

    fn location(&self, database: &DatabaseName) -> String {
        format!("postgres://{}/{database}", self.admin.url.host_port())
    }

    fn connect_options(&self, database: &DatabaseName) -> ConnectOptions {
        self.admin.settings.tenant_options(self.admin.url.connection_url_for(database.as_str()))
    }

    async fn open(&self, database: &DatabaseName) -> Result<DatabaseConnection, DatabaseError> {
        connect(self.connect_options(database), Some(&self.admin.url), self.location(database)).await
    }

    async fn database_exists(&self, database: &DatabaseName) -> Result<bool, DatabaseError> {
        let action = format!("check whether database `{database}` exists");
        self.admin.any_row("SELECT 1 FROM pg_database WHERE datname = $1", vec![database.as_str().into()], action).await
    }

    async fn create_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        self.admin
            .execute(&format!("CREATE DATABASE {}", database.pg_quoted()), |source| {
                if source.0.contains(DUPLICATE_DATABASE) || source.0.contains("already exists") {
                    DatabaseError::AlreadyExists { database: database.clone(), location }
                } else {
                    DatabaseError::Create { database: database.clone(), location, source }
                }
            })
            .await
    }

    async fn drop_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        // FORCE ends sessions still connected (a pool of another process), which would otherwise block the drop.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.pg_quoted());
        self.admin.execute(&sql, |source| DatabaseError::Drop { database: database.clone(), location, source }).await
    }

    async fn ping(&self) -> Result<(), DatabaseError> {
        self.admin.ping().await
    }
}

/// A schema per tenant inside the one database the server URL names.
#[derive(Debug)]
pub struct PostgresSchemaManager {
    admin: ServerAdmin,
}

impl PostgresSchemaManager {
    pub(crate) fn new(url: ServerUrl, settings: PoolSettings) -> Self {
        Self { admin: ServerAdmin::new(url, settings) }
    }
}

#[async_trait]
impl DatabaseManager for PostgresSchemaManager {
    fn driver(&self) -> Driver {
        Driver::Postgres
    }

    fn location(&self, database: &DatabaseName) -> String {
        format!("postgres://{}/{} (schema {database})", self.admin.url.host_port(), self.admin.url.database())
    }

    fn connect_options(&self, database: &DatabaseName) -> ConnectOptions {
        let mut options = self.admin.settings.tenant_options(self.admin.url.connection_url());
        // Only the tenant's schema is on the path: unqualified names can never reach another tenant's tables.
        options.set_schema_search_path(database.as_str());
        options
    }

    async fn open(&self, database: &DatabaseName) -> Result<DatabaseConnection, DatabaseError> {
        connect(self.connect_options(database), Some(&self.admin.url), self.location(database)).await
    }

    async fn database_exists(&self, database: &DatabaseName) -> Result<bool, DatabaseError> {
        let action = format!("check whether schema `{database}` exists");
        self.admin.any_row("SELECT 1 FROM pg_namespace WHERE nspname = $1", vec![database.as_str().into()], action).await
    }

    async fn create_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        self.admin
            .execute(&format!("CREATE SCHEMA {}", database.pg_quoted()), |source| {
                if source.0.contains(DUPLICATE_SCHEMA) || source.0.contains("already exists") {
                    DatabaseError::AlreadyExists { database: database.clone(), location }
                } else {
                    DatabaseError::Create { database: database.clone(), location, source }
                }
            })
            .await
    }

    async fn drop_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", database.pg_quoted());
        self.admin.execute(&sql, |source| DatabaseError::Drop { database: database.clone(), location, source }).await
    }

    async fn ping(&self) -> Result<(), DatabaseError> {
        self.admin.ping().await
    }
}
