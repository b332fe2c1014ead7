//! Tenant databases: how they are named ([`DatabaseName`], [`DatabaseNaming`]), where their servers are
//! ([`ServerUrl`]), and the [`DatabaseManager`] trait that creates, drops and finds them on each backend.
//!
//! Nothing here prints, and no password leaves a [`ServerUrl`] except through
//! [`ServerUrl::connection_url`], which goes straight to the driver.

mod admin;
mod manager;
mod mysql;
mod naming;
mod postgres;
mod roles;
mod scram;
mod server;
mod server_url;
mod sqlite;

pub(crate) use manager::connect;
pub use manager::{Adopt, ConnectionTarget, DatabaseError, DatabaseManager, DbMessage, PoolSettings, Taken, TemplateLock, manager_for};
pub use mysql::{MySqlDatabase, MySqlManager};
pub use naming::{DatabaseName, DatabaseNaming, InvalidDatabaseName, NamingError, Pooled};
pub use postgres::{PostgresDatabase, PostgresDatabaseManager, PostgresSchema, PostgresSchemaManager};
pub use roles::{Login, MIN_KEY_LEN, ROLE_KEY_ENV, RoleKey, RoleKeyError, Roles};
pub use server::{Dialect, ServerManager};
pub use server_url::{ServerUrl, ServerUrlError};
pub(crate) use sqlite::sqlite_connect_options;
pub(crate) use sqlite::sqlite_url;
pub use sqlite::{SqliteManager, bucket_of};

use std::fmt;

use serde::{Deserialize, Serialize};

/// The database engines tenant databases can live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// A SQLite file per tenant.
    Sqlite,
    /// PostgreSQL: a database or a schema per tenant.
    Postgres,
    /// MySQL or MariaDB: a database per tenant.
    #[serde(alias = "mariadb")]
    MySql,
}

impl Driver {
    /// A URL of this driver, for hints.
    pub fn example_url(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite://storage/central.sqlite",
            Self::Postgres => "postgres://postgres@127.0.0.1:5432/postgres",
            Self::MySql => "mysql://root@127.0.0.1:3306/mysql",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        })
    }
}

/// What one tenant gets on a PostgreSQL server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A database of its own.
    Database,
    /// A schema of its own inside one shared database.
    Schema,
}
