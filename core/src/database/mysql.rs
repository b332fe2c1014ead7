//! The MySQL and MariaDB dialect: a database per tenant.

use sea_orm::ConnectOptions;

use super::manager::PoolSettings;
use super::server::{Dialect, ServerManager};
use super::{DatabaseName, Driver, ServerUrl};

/// A database per tenant on one MySQL or MariaDB server.
pub type MySqlManager = ServerManager<MySqlDatabase>;

/// See [`MySqlManager`].
#[derive(Debug)]
pub struct MySqlDatabase;

impl Dialect for MySqlDatabase {
    const DRIVER: Driver = Driver::MySql;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?";
    const BYTES_SQL: &'static str = "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) \
         FROM information_schema.tables WHERE FIND_IN_SET(table_schema, ?)";

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", database.mysql_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        format!("DROP DATABASE IF EXISTS {}", database.mysql_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        // 1007 is ER_DB_CREATE_EXISTS.
        message.contains("1007") || message.contains("database exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("mysql://{}/{database}", server.host_port())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName) -> ConnectOptions {
        settings.tenant_options(server.connection_url_for(database.as_str()))
    }
}
