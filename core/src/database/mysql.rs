//! MySQL and MariaDB: a database per tenant.

use async_trait::async_trait;
use sea_orm::{ConnectOptions, DatabaseConnection};

use super::admin::ServerAdmin;
use super::manager::{PoolSettings, connect};
use super::{DatabaseError, DatabaseManager, DatabaseName, Driver, ServerUrl};

/// A database per tenant on one MySQL or MariaDB server.
#[derive(Debug)]
pub struct MySqlManager {
    admin: ServerAdmin,
}

impl MySqlManager {
    pub(crate) fn new(url: ServerUrl, settings: PoolSettings) -> Self {
        Self { admin: ServerAdmin::new(url, settings) }
    }
}

#[async_trait]
impl DatabaseManager for MySqlManager {
    fn driver(&self) -> Driver {
        Driver::MySql
    }

    fn location(&self, database: &DatabaseName) -> String {
        format!("mysql://{}/{database}", self.admin.url.host_port())
    }

    fn connect_options(&self, database: &DatabaseName) -> ConnectOptions {
        self.admin.settings.tenant_options(self.admin.url.connection_url_for(database.as_str()))
    }

    async fn open(&self, database: &DatabaseName) -> Result<DatabaseConnection, DatabaseError> {
        connect(self.connect_options(database), Some(&self.admin.url), self.location(database)).await
    }

    async fn database_exists(&self, database: &DatabaseName) -> Result<bool, DatabaseError> {
        let action = format!("check whether database `{database}` exists");
        self.admin.any_row("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", vec![database.as_str().into()], action).await
    }

    async fn create_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        let sql = format!("CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", database.mysql_quoted());
        self.admin
            .execute(&sql, |source| {
                // 1007: ER_DB_CREATE_EXISTS
                if source.0.contains("1007") || source.0.contains("database exists") {
                    DatabaseError::AlreadyExists { database: database.clone(), location }
                } else {
                    DatabaseError::Create { database: database.clone(), location, source }
                }
            })
            .await
    }

    async fn drop_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        let sql = format!("DROP DATABASE IF EXISTS {}", database.mysql_quoted());
        self.admin.execute(&sql, |source| DatabaseError::Drop { database: database.clone(), location, source }).await
    }

    async fn ping(&self) -> Result<(), DatabaseError> {
        self.admin.ping().await
    }
}
