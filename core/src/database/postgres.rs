//! PostgreSQL dialects: a database per tenant ([`PostgresDatabase`]) or a schema per tenant in the
//! one database the server URL names ([`PostgresSchema`]).

use sea_orm::ConnectOptions;

use super::manager::PoolSettings;
use super::server::{Dialect, ServerManager};
use super::{ConnectionTarget, DatabaseName, Driver, ServerUrl};

/// A database per tenant on one PostgreSQL server.
pub type PostgresDatabaseManager = ServerManager<PostgresDatabase>;
/// A schema per tenant in one PostgreSQL database.
pub type PostgresSchemaManager = ServerManager<PostgresSchema>;

/// PostgreSQL's SQLSTATEs for "database already exists" and "schema already exists".
const DUPLICATE_DATABASE: &str = "42P04";
const DUPLICATE_SCHEMA: &str = "42P06";

/// See [`PostgresDatabaseManager`].
#[derive(Debug)]
pub struct PostgresDatabase;

impl Dialect for PostgresDatabase {
    const DRIVER: Driver = Driver::Postgres;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM pg_database WHERE datname = $1";

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE DATABASE {}", database.pg_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        // FORCE ends sessions still connected (a pool of another process), which would otherwise block the drop.
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.pg_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        message.contains(DUPLICATE_DATABASE) || message.contains("already exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("postgres://{}/{database}", server.host_port())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName) -> ConnectOptions {
        settings.tenant_options(server.connection_url_for(database.as_str()))
    }
}

/// See [`PostgresSchemaManager`].
#[derive(Debug)]
pub struct PostgresSchema;

impl Dialect for PostgresSchema {
    const DRIVER: Driver = Driver::Postgres;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM pg_namespace WHERE nspname = $1";

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE SCHEMA {}", database.pg_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        format!("DROP SCHEMA IF EXISTS {} CASCADE", database.pg_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        message.contains(DUPLICATE_SCHEMA) || message.contains("already exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("postgres://{}/{} (schema {database})", server.host_port(), server.database())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName) -> ConnectOptions {
        let mut options = settings.tenant_options(server.connection_url());
        // Only the tenant's schema is on the path: unqualified names can never reach another tenant's tables.
        options.set_schema_search_path(database.as_str());
        options
    }

    fn connection_target(server: &ServerUrl, database: &DatabaseName) -> ConnectionTarget {
        ConnectionTarget { url: server.connection_url(), schema: Some(database.as_str().to_owned()) }
    }
}
