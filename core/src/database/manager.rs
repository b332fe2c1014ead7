//! The [`DatabaseManager`] trait, its error type, and [`manager_for`], which picks the implementation
//! the configuration asks for.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, DatabaseConnection};

use super::{
    DatabaseName, Driver, Isolation, Login, MySqlManager, PostgresDatabaseManager, PostgresSchemaManager, ServerUrl, SqliteManager,
};
use crate::config::Config;

/// What [`DatabaseManager::secure`] does with what a tenant's database already holds.
#[derive(Debug, Clone, Copy)]
pub enum Adopt<'a> {
    /// Nothing: it is new and empty, or the role's already.
    Nothing,
    /// Gives the role every object the server's user (or anyone else) made in it: a restore, a
    /// database of the pool, an installation switching to roles.
    Everything,
    /// A copy of the template whose objects the role `owner` holds ([`DatabaseManager::own_template`]):
    /// the tenant's role is made a member of `owner`. The owner holds the same objects in every
    /// copy, but a tenant's role can connect to its own database only. [`Adopt::Everything`] if
    /// `owner` is missing (a template built before roles).
    CopyOf(&'a DatabaseName),
}

/// What [`DatabaseManager::take_pooled`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Another process took it first: nothing changed.
    ByAnother,
    /// Renamed only: no login was asked for, or the engine's pool databases have no role of
    /// their own (schemas), so what it holds is the server user's; [`DatabaseManager::secure`]
    /// it with [`Adopt::Everything`] for a login.
    Renamed,
    /// Renamed, and given to the login's role with all it holds, in the same transaction.
    Secured,
}

/// Creates, drops and finds tenant databases on one server (or one folder, for SQLite), and says how
/// to connect to them.
///
/// Implementations take only checked [`DatabaseName`]s, quote them, and never put a password in an
/// error. `create_database` fails if the database exists: provisioning must never adopt (and later drop) a
/// database it did not make.
///
/// # Errors
/// Every async method returns [`DatabaseError`], which names the database and the server (host and
/// port, never credentials).
///
/// # Example
/// ```no_run
/// # async fn demo() -> Result<(), tenancy_core::database::DatabaseError> {
/// use tenancy_core::{Config, TenantId};
/// use tenancy_core::database::manager_for;
///
/// let config = Config::defaults_at(std::path::Path::new("."));
/// let manager = manager_for(&config, "default").expect("the default configuration is complete");
/// let name = config.naming().name_for(&TenantId::new());
/// manager.create_database(&name).await?;
/// assert!(manager.database_exists(&name).await?);
/// manager.drop_database(&name).await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait DatabaseManager: Send + Sync + fmt::Debug {
    /// The engine.
    fn driver(&self) -> Driver;

    /// Where `database` lives, for messages: a path, or `driver://host:port/name`. No credentials.
    fn location(&self, database: &DatabaseName) -> String;

    /// How to open a pool on `database`, logging in as `login` (a tenant's own role) or, with
    /// `None`, as the server's user; pool sizes and timeouts are already set.
    fn connect_options(&self, database: &DatabaseName, login: Option<&Login>) -> ConnectOptions;

    /// How another program reaches `database` as `login` (or the server's user): a plugin opening
    /// its own connection.
    fn connection_target(&self, database: &DatabaseName, login: Option<&Login>) -> ConnectionTarget;

    /// Opens a pool of `pool_size` connections on `database`, as the server's user.
    async fn open(&self, database: &DatabaseName) -> Result<DatabaseConnection, DatabaseError>;

    /// Opens a pool of at most `connections` connections on `database`, as `login` or the
    /// server's user.
    async fn open_sized(
        &self,
        database: &DatabaseName,
        login: Option<&Login>,
        connections: u32,
    ) -> Result<DatabaseConnection, DatabaseError>;

    /// A pool of at most `connections` connections on `database` that connects on first use: no
    /// connection, no I/O, until a query runs (a web request that never touches its database costs
    /// none). An unreachable database fails that first query instead of this call. The default opens
    /// at once, as [`DatabaseManager::open_sized`].
    async fn open_lazy(
        &self,
        database: &DatabaseName,
        login: Option<&Login>,
        connections: u32,
    ) -> Result<DatabaseConnection, DatabaseError> {
        self.open_sized(database, login, connections).await
    }

    /// Gives `database` to `login`'s role, making the role first if it is not there: the role
    /// owns the database (or schema) and, as `adopt` says, what is already in it; nobody else but
    /// the server's user can reach it. Sets the role's password. Idempotent: a rerun repairs what
    /// a crash or a hand left half done.
    async fn secure(&self, _database: &DatabaseName, _login: &Login, _adopt: Adopt<'_>) -> Result<(), DatabaseError> {
        Err(DatabaseError::NoRoles(self.driver()))
    }

    /// Gives what is in `building` (a template being made, by the server's user) to the role
    /// `owner`, made without login if missing, so that a tenant whose database is a copy takes it
    /// over without a connection into it and without each object's owner changed: see
    /// [`Adopt::CopyOf`]. Nothing where the engine does not take over copies that way.
    async fn own_template(&self, _building: &DatabaseName, _owner: &DatabaseName) -> Result<(), DatabaseError> {
        Ok(())
    }

    /// Gives `filling`, a database of the pool being made, and all in it to a role of its own,
    /// `role` (its name in the pool), made without login: the tenant that takes it gets that role
    /// renamed as its own ([`DatabaseManager::take_pooled`]), with nothing else to change. Until
    /// then no tenant's role may connect to it. Nothing where the engine does not do it that way.
    async fn own_pooled(&self, _filling: &DatabaseName, _role: &DatabaseName) -> Result<(), DatabaseError> {
        Ok(())
    }

    /// Ends the sessions of `role` and drops it; one that is not there is not an error. Drop its
    /// database first.
    async fn drop_role(&self, _role: &DatabaseName) -> Result<(), DatabaseError> {
        Ok(())
    }

    /// Whether the role `role` exists.
    async fn role_exists(&self, _role: &DatabaseName) -> Result<bool, DatabaseError> {
        Ok(false)
    }

    /// Whether the server's user may create roles and give them databases, which
    /// `roles = "per_tenant"` needs; `Ok(false)` on engines without roles.
    async fn may_create_roles(&self) -> Result<bool, DatabaseError> {
        Ok(false)
    }

    /// Whether `database` exists.
    async fn database_exists(&self, database: &DatabaseName) -> Result<bool, DatabaseError>;

    /// Creates `database`; fails with [`DatabaseError::AlreadyExists`] if it is there already.
    async fn create_database(&self, database: &DatabaseName) -> Result<(), DatabaseError>;

    /// Drops `database` and everything in it; dropping one that does not exist is not an error.
    /// Close the tenant's pools first.
    async fn drop_database(&self, database: &DatabaseName) -> Result<(), DatabaseError>;

    /// Checks that the server (or folder) can be reached.
    async fn ping(&self) -> Result<(), DatabaseError>;

    /// Whether databases can be made as copies of a template here (SQLite, PostgreSQL databases).
    fn supports_templates(&self) -> bool {
        false
    }

    /// Template provisioning: whether the sealed template `template` is there to copy. Engines
    /// without templates answer [`DatabaseError::NoTemplates`] (as do the methods below).
    async fn template_ready(&self, _template: &DatabaseName) -> Result<bool, DatabaseError> {
        Err(DatabaseError::NoTemplates(self.driver()))
    }

    /// Holds the right to build `template` until the lock is released: one process builds, the
    /// others wait and copy what it built.
    async fn lock_template(&self, _template: &DatabaseName) -> Result<TemplateLock, DatabaseError> {
        Err(DatabaseError::NoTemplates(self.driver()))
    }

    /// Turns the migrated database `building` into the sealed template `template`: only a sealed
    /// template is ever copied, so a build interrupted half-way is never a tenant's start. Close
    /// every pool on `building` first.
    async fn seal_template(&self, _building: &DatabaseName, _template: &DatabaseName) -> Result<(), DatabaseError> {
        Err(DatabaseError::NoTemplates(self.driver()))
    }

    /// Creates `database` as a copy of the sealed `template`; fails with
    /// [`DatabaseError::AlreadyExists`] as [`DatabaseManager::create_database`] does.
    async fn create_from_template(&self, _template: &DatabaseName, _database: &DatabaseName) -> Result<(), DatabaseError> {
        Err(DatabaseError::NoTemplates(self.driver()))
    }

    /// The templates (sealed or not) `naming` names, of any migration set.
    async fn template_names(&self, _naming: &super::DatabaseNaming) -> Result<Vec<DatabaseName>, DatabaseError> {
        Err(DatabaseError::NoTemplates(self.driver()))
    }

    /// Drops a template, sealed or not; one that is not there is not an error.
    async fn drop_template(&self, _template: &DatabaseName) -> Result<(), DatabaseError> {
        Err(DatabaseError::NoTemplates(self.driver()))
    }

    /// The pool of ready databases (`provision = "pool"`): renames `from` to `to` in one
    /// statement, which two processes cannot both win. `Ok(false)` when `from` is not there (taken
    /// by another process); [`DatabaseError::AlreadyExists`] when `to` is. Close every pool on
    /// `from` first. Engines that cannot rename a database answer [`DatabaseError::NoPool`].
    async fn rename_database(&self, _from: &DatabaseName, _to: &DatabaseName) -> Result<bool, DatabaseError> {
        Err(DatabaseError::NoPool(self.driver()))
    }

    /// Takes the pool's database `pooled` as `database`, renamed as [`DatabaseManager::rename_database`]
    /// does. With a `login`, where `pooled` has a role of its own holding it
    /// ([`DatabaseManager::own_pooled`]), the same transaction renames that role as the login's
    /// and lets it log in: one commit, and a failure leaves the database in the pool as it was.
    async fn take_pooled(&self, pooled: &DatabaseName, database: &DatabaseName, _login: Option<&Login>) -> Result<Taken, DatabaseError> {
        Ok(if self.rename_database(pooled, database).await? { Taken::Renamed } else { Taken::ByAnother })
    }

    /// The names of every database (or schema) on the server, for finding the pool's.
    async fn database_names(&self) -> Result<Vec<String>, DatabaseError> {
        Err(DatabaseError::NoPool(self.driver()))
    }

    /// The bytes the tenant databases named take on this server (tables and indexes; the files
    /// on SQLite), for `placement = "least_bytes"`. Names not found count nothing.
    async fn bytes_of(&self, databases: &[DatabaseName]) -> Result<u64, DatabaseError>;

    /// How many other sessions are busy in `database` now: running a statement or inside a
    /// transaction (an idle pooled connection is not busy). `None` where the engine cannot tell
    /// (SQLite: other processes' connections are not visible).
    async fn busy_sessions(&self, _database: &DatabaseName) -> Result<Option<u64>, DatabaseError> {
        Ok(None)
    }

    /// Holds the right to fill the pool (or build a template) named `name` until released: one
    /// process at a time. Engines without a pool or templates answer as those methods do.
    async fn lock_named(&self, name: &DatabaseName) -> Result<TemplateLock, DatabaseError> {
        self.lock_template(name).await
    }
}

/// The right to build a template, held until [`TemplateLock::release`] (or drop).
pub enum TemplateLock {
    /// SQLite: an exclusive lock on a file beside the templates.
    File(std::fs::File),
    /// PostgreSQL: a session advisory lock on a connection of its own.
    Session(DatabaseConnection),
}

impl TemplateLock {
    /// Lets the next builder in.
    pub async fn release(self) {
        match self {
            Self::File(file) => drop(file),
            // Closing the session ends its advisory lock.
            Self::Session(connection) => {
                let _ = connection.close().await;
            }
        }
    }
}

/// A connection URL, and under PostgreSQL schema isolation the schema to put on the `search_path`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionTarget {
    /// The URL, credentials included: never print it.
    pub url: String,
    /// The schema, if the database is a schema.
    pub schema: Option<String>,
}

impl ConnectionTarget {
    /// One URL another program's driver understands (`DATABASE_URL`): under schema isolation the
    /// schema rides on the URL's `options` parameter (`-csearch_path=…`), which libpq, sqlx and
    /// the drivers built on them honour. Credentials included: never print it.
    pub fn database_url(&self) -> String {
        match &self.schema {
            None => self.url.clone(),
            // Schema names are checked identifiers (`a-z`, `0-9`, `_`): nothing to escape.
            Some(schema) => {
                let separator = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{separator}options=-csearch_path%3D{schema}", self.url)
            }
        }
    }
}

impl fmt::Debug for ConnectionTarget {
    /// Without the URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionTarget").field("url", &"<hidden>").field("schema", &self.schema).finish()
    }
}

/// A failed database operation. Messages name the database and the server, never a password.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The server did not accept a connection.
    #[error("cannot connect to `{location}`")]
    Connect {
        /// Driver, host, port and database.
        location: String,
        /// The driver's reason.
        source: DbMessage,
    },
    /// `create` found the database there already.
    #[error("database `{database}` already exists at `{location}`; it was not made by this run, so it is left alone")]
    AlreadyExists {
        /// The name.
        database: DatabaseName,
        /// Where.
        location: String,
    },
    /// `CREATE DATABASE` (or schema, or file) failed.
    #[error("failed to create database `{database}` at `{location}`")]
    Create {
        /// The name.
        database: DatabaseName,
        /// Where.
        location: String,
        /// The driver's reason.
        source: DbMessage,
    },
    /// `DROP DATABASE` (or schema, or file) failed.
    #[error("failed to drop database `{database}` at `{location}`")]
    Drop {
        /// The name.
        database: DatabaseName,
        /// Where.
        location: String,
        /// The driver's reason.
        source: DbMessage,
    },
    /// Making a tenant's role, or giving it its database, failed.
    #[error("failed to give database `{database}` at `{location}` to role `{role}`")]
    Secure {
        /// The role.
        role: DatabaseName,
        /// The database (or schema).
        database: DatabaseName,
        /// Where.
        location: String,
        /// The driver's reason.
        source: DbMessage,
    },
    /// Dropping a tenant's role failed.
    #[error("failed to drop role `{role}` at `{location}`")]
    DropRole {
        /// The role.
        role: DatabaseName,
        /// Where.
        location: String,
        /// The driver's reason.
        source: DbMessage,
    },
    /// Another query failed.
    #[error("failed to {action} at `{location}`")]
    Query {
        /// What was being done, e.g. "check whether database `x` exists".
        action: String,
        /// Where.
        location: String,
        /// The driver's reason.
        source: DbMessage,
    },
    /// A file operation on a SQLite database failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// Template provisioning on an engine without templates (MySQL, PostgreSQL schemas).
    #[error("{0} keeps no database templates here: set `tenant_database.provision = \"migrations\"`")]
    NoTemplates(Driver),
    /// Tenants have roles of their own, and the key of their passwords cannot be read.
    #[error(transparent)]
    RoleKey(std::sync::Arc<super::RoleKeyError>),
    /// Roles asked of an engine without them (SQLite).
    #[error("{0} has no database roles: `tenant_database.roles = \"per_tenant\"` is for postgres and mysql")]
    NoRoles(Driver),
    /// A pool of ready databases on an engine that cannot rename one (MySQL, SQLite).
    #[error("{0} keeps no pool of ready databases here: set `tenant_database.provision` to `migrations` or `template`")]
    NoPool(Driver),
    /// No server of that name is configured.
    #[error("no database server named `{0}` in `tenant_database.servers`")]
    UnknownServer(String),
    /// A tenant context nested inside others that hold every pool the budget allows: waiting for
    /// room would never end, since those pools stay in use until the nested call returns.
    #[error(
        "cannot open a pool for tenant `{tenant}` inside a tenant context: the {open_pools} open pools, which the connection budget ({budget}) allows at most, are held by the contexts this call is nested in"
    )]
    NestedOverBudget {
        /// The tenant asked for.
        tenant: String,
        /// Pools open.
        open_pools: usize,
        /// `tenant_database.connection_budget`.
        budget: u32,
    },
}

/// A driver's error message with any password removed. Keeping the message rather than the
/// original error is deliberate: some driver errors quote the connection URL back.
#[derive(Debug, Clone)]
pub struct DbMessage(pub String);

impl fmt::Display for DbMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbMessage {}

impl DbMessage {
    /// The message of `err` with every password scrubbed (see [`crate::secret::scrub`]);
    /// `server`'s, in whichever form the message quotes it, first of all.
    pub fn scrubbed(server: Option<&ServerUrl>, err: &dyn fmt::Display) -> Self {
        let text = err.to_string();
        let text = match server {
            Some(server) => server.scrub(&text),
            None => text,
        };
        Self(crate::secret::scrub(&text))
    }
}

/// Pool settings shared by every manager, taken from `[tenant_database]`.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections of one tenant pool.
    pub pool_size: u32,
    /// How long a pooled connection may sit unused.
    pub idle_timeout: Duration,
    /// How long to wait for a server to accept a connection.
    pub connect_timeout: Duration,
    /// PostgreSQL `application_name` of tenant connections.
    pub application_name: String,
}

impl PoolSettings {
    /// The settings of `[tenant_database]`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            pool_size: config.tenant_database.pool_size,
            idle_timeout: config.idle_timeout(),
            connect_timeout: config.connect_timeout(),
            application_name: config.tenant_database.application_name.clone(),
        }
    }

    /// Connect options for a tenant pool: opens lazily grown pools that keep no idle connection
    /// around longer than the idle timeout.
    pub fn tenant_options(&self, url: String) -> ConnectOptions {
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(self.pool_size)
            .min_connections(0)
            .connect_timeout(self.connect_timeout)
            .acquire_timeout(self.connect_timeout.max(Duration::from_secs(30)))
            .idle_timeout(self.idle_timeout)
            // A ping before every acquire costs a round trip per query; a connection idle for a
            // while is still checked, so one broken by a server restart is replaced, not handed out.
            .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
            .set_application_name(&self.application_name)
            .sqlx_logging(false);
        options
    }

    /// The same pool settings as [`PoolSettings::tenant_options`], for a pool built on sqlx
    /// directly, of at most `connections` connections.
    pub(crate) fn sqlx_pool_options<DB: sea_orm::sqlx::Database>(&self, connections: u32) -> sea_orm::sqlx::pool::PoolOptions<DB> {
        sea_orm::sqlx::pool::PoolOptions::<DB>::new()
            .max_connections(connections)
            .min_connections(0)
            .acquire_timeout(self.connect_timeout.max(Duration::from_secs(30)))
            .idle_timeout(self.idle_timeout)
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    // As `test_before_acquire_if_idle_for` below: ping only a connection idle for a while.
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sea_orm::sqlx::Connection::ping(connection).await?;
                    }
                    Ok(true)
                })
            })
    }

    /// Connect options for the small administration pool of a server.
    pub(crate) fn admin_options(&self, url: String) -> ConnectOptions {
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(2)
            .min_connections(0)
            .connect_timeout(self.connect_timeout)
            .idle_timeout(Duration::from_secs(30))
            .sqlx_logging(false);
        options
    }
}

/// A pooled connection idle this long is pinged before it is handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(30);

/// Opens `options` and turns a failure into [`DatabaseError::Connect`] naming `location`.
/// On a server, a TCP probe runs first so that a refused connection fails at once with its reason.
pub(crate) async fn connect(
    options: ConnectOptions,
    server: Option<&ServerUrl>,
    location: String,
) -> Result<DatabaseConnection, DatabaseError> {
    if let Some(server) = server {
        let timeout = options.get_connect_timeout().unwrap_or(Duration::from_secs(10));
        server.probe(timeout).await.map_err(|err| DatabaseError::Connect {
            location: location.clone(),
            source: DbMessage(format!("{err} (connecting to {})", server.host_port())),
        })?;
    }
    connect_unprobed(options, server, location).await
}

/// [`connect`] without the TCP probe, for a server that answered moments ago: on PostgreSQL every
/// accepted TCP connection costs the server a process, so probing before each tenant pool would
/// double the work of opening it.
pub(crate) async fn connect_unprobed(
    options: ConnectOptions,
    server: Option<&ServerUrl>,
    location: String,
) -> Result<DatabaseConnection, DatabaseError> {
    sea_orm::Database::connect(options).await.map_err(|err| DatabaseError::Connect { location, source: DbMessage::scrubbed(server, &err) })
}

/// The manager for tenant databases on the configured server `server` (ignored for SQLite).
///
/// # Errors
/// [`DatabaseError::UnknownServer`] if `server` is not configured.
pub fn manager_for(config: &Config, server: &str) -> Result<Arc<dyn DatabaseManager>, DatabaseError> {
    let settings = PoolSettings::from_config(config);
    let db = &config.tenant_database;
    if db.driver == Driver::Sqlite {
        return Ok(Arc::new(SqliteManager::new(config.sqlite_dir(), settings)));
    }
    let url = db.servers.get(server).ok_or_else(|| DatabaseError::UnknownServer(server.to_owned()))?;
    let url = ServerUrl::parse(url.url.expose()).map_err(|err| DatabaseError::Connect {
        location: format!("tenant_database.servers.{server}"),
        source: DbMessage(err.to_string()),
    })?;
    Ok(match (db.driver, db.isolation) {
        (Driver::Postgres, Isolation::Database) => Arc::new(PostgresDatabaseManager::new(url, settings)),
        (Driver::Postgres, Isolation::Schema) => Arc::new(PostgresSchemaManager::new(url, settings)),
        _ => Arc::new(MySqlManager::new(url, settings)),
    })
}
