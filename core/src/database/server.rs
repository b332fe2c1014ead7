//! [`ServerManager`]: the one [`DatabaseManager`] for every database server. What differs between
//! PostgreSQL (a database or a schema per tenant) and MySQL is only SQL and URLs, which a
//! [`Dialect`] supplies.

use std::fmt;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, DatabaseConnection};

use super::admin::ServerAdmin;
use super::manager::PoolSettings;
use super::{ConnectionTarget, DatabaseError, DatabaseManager, DatabaseName, DbMessage, Driver, ServerUrl};

/// What one kind of server needs said differently.
pub trait Dialect: fmt::Debug + Send + Sync + 'static {
    /// The engine.
    const DRIVER: Driver;
    /// A query with one bind parameter, the name, that returns a row if the database exists.
    const EXISTS_SQL: &'static str;

    /// `CREATE …` for a tenant's database.
    fn create_sql(database: &DatabaseName) -> String;
    /// `DROP … IF EXISTS` for a tenant's database, including everything in it.
    fn drop_sql(database: &DatabaseName) -> String;
    /// Whether a failed `CREATE` failed because the database exists.
    fn is_already_exists(message: &str) -> bool;
    /// Where a tenant's database is, for messages (no credentials).
    fn location(server: &ServerUrl, database: &DatabaseName) -> String;
    /// Pool options for a tenant's database.
    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName) -> ConnectOptions;

    /// How another program reaches `database`: by default, the server's URL naming it.
    fn connection_target(server: &ServerUrl, database: &DatabaseName) -> ConnectionTarget {
        ConnectionTarget { url: server.connection_url_for(database.as_str()), schema: None }
    }
}

/// Tenant databases on one PostgreSQL or MySQL server, as the dialect `D` makes them.
#[derive(Debug)]
pub struct ServerManager<D: Dialect> {
    admin: ServerAdmin,
    dialect: std::marker::PhantomData<D>,
}

impl<D: Dialect> ServerManager<D> {
    pub(crate) fn new(url: ServerUrl, settings: PoolSettings) -> Self {
        Self { admin: ServerAdmin::new(url, settings), dialect: std::marker::PhantomData }
    }
}

#[async_trait]
impl<D: Dialect> DatabaseManager for ServerManager<D> {
    fn driver(&self) -> Driver {
        D::DRIVER
    }

    fn location(&self, database: &DatabaseName) -> String {
        D::location(&self.admin.url, database)
    }

    fn connect_options(&self, database: &DatabaseName) -> ConnectOptions {
        D::connect_options(&self.admin.settings, &self.admin.url, database)
    }

    fn connection_target(&self, database: &DatabaseName) -> ConnectionTarget {
        D::connection_target(&self.admin.url, database)
    }

    async fn open(&self, database: &DatabaseName) -> Result<DatabaseConnection, DatabaseError> {
        self.open_sized(database, self.admin.settings.pool_size).await
    }

    async fn open_sized(&self, database: &DatabaseName, connections: u32) -> Result<DatabaseConnection, DatabaseError> {
        let mut options = self.connect_options(database);
        options.max_connections(connections);
        self.admin.open(options, self.location(database)).await
    }

    async fn open_lazy(&self, database: &DatabaseName, connections: u32) -> Result<DatabaseConnection, DatabaseError> {
        let mut options = self.connect_options(database);
        options.max_connections(connections).connect_lazy(true);
        super::manager::connect_unprobed(options, Some(&self.admin.url), self.location(database)).await
    }

    async fn database_exists(&self, database: &DatabaseName) -> Result<bool, DatabaseError> {
        let action = format!("check whether `{database}` exists");
        self.admin.any_row(D::EXISTS_SQL, vec![database.as_str().into()], action).await
    }

    async fn create_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        self.admin
            .execute(&D::create_sql(database), |source: DbMessage| {
                if D::is_already_exists(&source.0) {
                    DatabaseError::AlreadyExists { database: database.clone(), location }
                } else {
                    DatabaseError::Create { database: database.clone(), location, source }
                }
            })
            .await
    }

    async fn drop_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        self.admin.execute(&D::drop_sql(database), |source| DatabaseError::Drop { database: database.clone(), location, source }).await
    }

    async fn ping(&self) -> Result<(), DatabaseError> {
        self.admin.ping().await
    }
}
