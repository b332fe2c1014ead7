//! [`ServerManager`]: the one [`DatabaseManager`] for every database server. What differs between
//! PostgreSQL (a database or a schema per tenant) and MySQL is only SQL and URLs, which a
//! [`Dialect`] supplies.

use std::fmt;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};

use super::admin::ServerAdmin;
use super::manager::PoolSettings;
use super::manager::TemplateLock;
use super::{Adopt, ConnectionTarget, DatabaseError, DatabaseManager, DatabaseName, DbMessage, Driver, Login, ServerUrl, Taken};

/// What one kind of server needs said differently.
pub trait Dialect: fmt::Debug + Send + Sync + 'static {
    /// The engine.
    const DRIVER: Driver;
    /// A query with one bind parameter, the name, that returns a row if the database exists.
    const EXISTS_SQL: &'static str;
    /// Whether databases can be made as copies of a template (PostgreSQL databases only).
    const TEMPLATES: bool = false;
    /// One bind parameter, tenant database names separated by commas (checked identifiers hold
    /// none); one row, one integer: the bytes they take together.
    const BYTES_SQL: &'static str;
    /// A bind parameter, a tenant database's name (and, with [`Self::ACTIVE_TRANSACTIONS`], a
    /// second: what [`Self::active_transactions`] made of it); one row, one integer: the other
    /// sessions running a statement or holding a transaction open in it.
    const BUSY_SQL: &'static str;
    /// A query whose first row's third column lists the engine's open transactions, where
    /// [`Self::BUSY_SQL`] needs it.
    const ACTIVE_TRANSACTIONS: Option<&'static str> = None;
    /// Every database's (or schema's) name, for the pool of ready databases; `None` where there
    /// is no pool (MySQL cannot rename a database).
    const NAMES_SQL: Option<&'static str> = None;

    /// The second bind parameter of [`Self::BUSY_SQL`], from what [`Self::ACTIVE_TRANSACTIONS`] answered.
    fn active_transactions(_answer: &str) -> String {
        String::new()
    }

    /// `ALTER … RENAME` of a database, where the engine has it.
    fn rename_sql(_from: &DatabaseName, _to: &DatabaseName) -> Option<String> {
        None
    }
    /// Whether a failed statement failed because the database it names is not there.
    fn is_missing(_message: &str) -> bool {
        false
    }

    /// `CREATE …` for a tenant's database.
    fn create_sql(database: &DatabaseName) -> String;
    /// `DROP … IF EXISTS` for a tenant's database, including everything in it.
    fn drop_sql(database: &DatabaseName) -> String;
    /// Whether a failed `CREATE` failed because the database exists.
    fn is_already_exists(message: &str) -> bool;
    /// Where a tenant's database is, for messages (no credentials).
    fn location(server: &ServerUrl, database: &DatabaseName) -> String;
    /// Pool options for a tenant's database, logging in as `login` or the server's user. Every
    /// connection is put back as it was opened before the next lease takes it.
    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName, login: Option<&Login>) -> ConnectOptions;

    /// How another program reaches `database`: by default, the server's URL naming it.
    fn connection_target(server: &ServerUrl, database: &DatabaseName, login: Option<&Login>) -> ConnectionTarget {
        let url = server.connection_url_as(Some(database.as_str()), login);
        ConnectionTarget { url, schema: None }
    }

    /// One bind parameter, a role name: a row if the role exists.
    const ROLE_EXISTS_SQL: &'static str;
    /// One row, one integer: 1 if the server's user may create roles and give them databases.
    const MAY_CREATE_ROLES_SQL: &'static str;
    /// The sessions logged in as `role`, one id per row as text.
    fn role_sessions_sql(role: &DatabaseName) -> String;
    /// Ends the session `id`.
    fn end_session_sql(id: u64) -> String;
    /// Makes `login`'s role if it is not there, sets its password, and gives it `database` alone.
    fn secure_sql(database: &DatabaseName, login: &Login) -> Vec<String>;
    /// Gives `role` whatever is in `database` that another user made (a template's tables); run
    /// in the tenant's database itself where [`Self::ADOPT_IN_DATABASE`] says so, else on the
    /// server URL's database. `None` where privileges cover it (MySQL).
    fn adopt_sql(_database: &DatabaseName, _role: &DatabaseName) -> Option<String> {
        None
    }
    /// Whether [`Self::adopt_sql`] runs in the tenant's database.
    const ADOPT_IN_DATABASE: bool = false;
    /// Drops `role` (its database or schema gone first) and what it still holds.
    fn drop_role_sql(role: &DatabaseName) -> Vec<String>;
    /// Makes `owner`, a role without login that holds a template's objects, if it is not there.
    /// `None` where templates are not copied with their owners.
    fn template_owner_sql(_owner: &DatabaseName) -> Option<String> {
        None
    }
    /// Makes `role` a member of `owner`, with its rights.
    fn membership_sql(_owner: &DatabaseName, _role: &DatabaseName) -> Option<String> {
        None
    }
    /// Makes `role`, without login, and gives it `database`, a database of the pool being
    /// filled, alone (its objects are given by [`Self::adopt_sql`]). `None` where a database of
    /// the pool does not come with a role.
    fn pooled_owner_sql(_database: &DatabaseName, _role: &DatabaseName) -> Option<Vec<String>> {
        None
    }
    /// Renames the pool's database `pooled` and its role (see [`Self::pooled_owner_sql`]) as
    /// the tenant's `database` and `login`'s role, which may then log in with its password.
    fn take_pooled_sql(_pooled: &DatabaseName, _database: &DatabaseName, _login: &Login) -> Option<Vec<String>> {
        None
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

    fn connect_options(&self, database: &DatabaseName, login: Option<&Login>) -> ConnectOptions {
        D::connect_options(&self.admin.settings, &self.admin.url, database, login)
    }

    fn connection_target(&self, database: &DatabaseName, login: Option<&Login>) -> ConnectionTarget {
        D::connection_target(&self.admin.url, database, login)
    }

    async fn open(&self, database: &DatabaseName) -> Result<DatabaseConnection, DatabaseError> {
        self.open_sized(database, None, self.admin.settings.pool_size).await
    }

    async fn open_sized(
        &self,
        database: &DatabaseName,
        login: Option<&Login>,
        connections: u32,
    ) -> Result<DatabaseConnection, DatabaseError> {
        let mut options = self.connect_options(database, login);
        options.max_connections(connections);
        self.admin.open(options, self.location(database)).await
    }

    async fn open_lazy(
        &self,
        database: &DatabaseName,
        login: Option<&Login>,
        connections: u32,
    ) -> Result<DatabaseConnection, DatabaseError> {
        let mut options = self.connect_options(database, login);
        options.max_connections(connections).connect_lazy(true);
        super::manager::connect_unprobed(options, Some(&self.admin.url), self.location(database)).await
    }

    async fn bytes_of(&self, databases: &[DatabaseName]) -> Result<u64, DatabaseError> {
        if databases.is_empty() {
            return Ok(0);
        }
        let names = databases.iter().map(DatabaseName::as_str).collect::<Vec<_>>().join(",");
        let bytes = self.admin.integer(D::BYTES_SQL, vec![names.into()], "measure tenant databases".into()).await?;
        Ok(u64::try_from(bytes).unwrap_or_default())
    }

    async fn busy_sessions(&self, database: &DatabaseName) -> Result<Option<u64>, DatabaseError> {
        let mut values: Vec<sea_orm::Value> = vec![database.as_str().into()];
        if let Some(sql) = D::ACTIVE_TRANSACTIONS {
            let answer = self.admin.text(sql, 2, "list the open transactions".into()).await?;
            values.push(D::active_transactions(&answer).into());
        }
        let busy = self.admin.integer(D::BUSY_SQL, values, format!("count the sessions in `{database}`")).await?;
        Ok(Some(u64::try_from(busy).unwrap_or_default()))
    }

    async fn database_exists(&self, database: &DatabaseName) -> Result<bool, DatabaseError> {
        let action = format!("check whether `{database}` exists");
        self.admin.any_row(D::EXISTS_SQL, vec![database.as_str().into()], action).await
    }

    async fn create_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        self.admin.execute(&D::create_sql(database), |source| self.create_error(database, source)).await
    }

    async fn drop_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let location = self.location(database);
        self.admin.execute(&D::drop_sql(database), |source| DatabaseError::Drop { database: database.clone(), location, source }).await
    }

    async fn ping(&self) -> Result<(), DatabaseError> {
        self.admin.ping().await
    }

    async fn secure(&self, database: &DatabaseName, login: &Login, adopt: Adopt<'_>) -> Result<(), DatabaseError> {
        let failed = |source| self.secure_error(database, &login.role, source);
        let mut statements = D::secure_sql(database, login);
        let adopt = match adopt {
            Adopt::CopyOf(owner) => match D::membership_sql(owner, &login.role) {
                // Its objects are the owner's in every copy: joining the owner takes them over
                // here, with no connection into the copy and no owner changed.
                Some(sql) if self.role_exists(owner).await? => {
                    statements.push(sql);
                    Adopt::Nothing
                }
                _ => Adopt::Everything,
            },
            other => other,
        };
        // One round trip and, on PostgreSQL, one transaction (a commit each would wait for the
        // disk each time): the statements as one simple query.
        if D::DRIVER == Driver::Postgres {
            self.admin.execute(&statements.join(";\n"), failed).await?;
        } else {
            for sql in statements {
                self.admin.execute(&sql, failed).await?;
            }
        }
        match (adopt, D::adopt_sql(database, &login.role)) {
            (Adopt::Everything, Some(sql)) => self.adopt(database, &sql, failed).await,
            _ => Ok(()),
        }
    }

    async fn own_template(&self, building: &DatabaseName, owner: &DatabaseName) -> Result<(), DatabaseError> {
        self.hand_over(building, owner, D::template_owner_sql(owner).map(|sql| vec![sql])).await
    }

    async fn own_pooled(&self, filling: &DatabaseName, role: &DatabaseName) -> Result<(), DatabaseError> {
        self.hand_over(filling, role, D::pooled_owner_sql(filling, role)).await
    }

    async fn drop_role(&self, role: &DatabaseName) -> Result<(), DatabaseError> {
        let failed = |source| DatabaseError::DropRole { role: role.clone(), location: self.admin.url.to_string(), source };
        // A role's sessions outlive it (MySQL) or keep it from going: end them first.
        let sessions = self.admin.names(&D::role_sessions_sql(role), format!("list the sessions of role `{role}`")).await?;
        for id in sessions.iter().filter_map(|id| id.parse::<u64>().ok()) {
            // One that ended meanwhile is no matter.
            let _ = self.admin.execute(&D::end_session_sql(id), failed).await;
        }
        for sql in D::drop_role_sql(role) {
            self.admin.execute(&sql, failed).await?;
        }
        Ok(())
    }

    async fn role_exists(&self, role: &DatabaseName) -> Result<bool, DatabaseError> {
        self.admin.any_row(D::ROLE_EXISTS_SQL, vec![role.as_str().into()], format!("look for role `{role}`")).await
    }

    async fn may_create_roles(&self) -> Result<bool, DatabaseError> {
        Ok(self.admin.integer(D::MAY_CREATE_ROLES_SQL, Vec::new(), "ask whether this user may create roles".into()).await? == 1)
    }

    fn supports_templates(&self) -> bool {
        D::TEMPLATES
    }

    async fn template_ready(&self, template: &DatabaseName) -> Result<bool, DatabaseError> {
        self.templates_supported()?;
        let sql = "SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate";
        self.admin.any_row(sql, vec![template.as_str().into()], format!("look for template `{template}`")).await
    }

    async fn lock_template(&self, template: &DatabaseName) -> Result<TemplateLock, DatabaseError> {
        self.templates_supported()?;
        self.lock_named(template).await
    }

    async fn lock_named(&self, template: &DatabaseName) -> Result<TemplateLock, DatabaseError> {
        if D::DRIVER != Driver::Postgres {
            return Err(DatabaseError::NoTemplates(D::DRIVER));
        }
        // A session lock lives as long as its connection: this one is the lock's alone.
        let mut options = self.admin.settings.admin_options(self.admin.url.connection_url());
        options.max_connections(1).min_connections(1);
        let session = self.admin.open(options, self.admin.url.to_string()).await?;
        let lock = sea_orm::Statement::from_sql_and_values(
            session.get_database_backend(),
            "SELECT pg_advisory_lock(hashtext($1))::text",
            [format!("tenancy template {template}").into()],
        );
        match session.query_one_raw(lock).await {
            Ok(_) => Ok(TemplateLock::Session(session)),
            Err(err) => Err(DatabaseError::Query {
                action: format!("lock the building of template `{template}`"),
                location: self.admin.url.to_string(),
                source: DbMessage::scrubbed(Some(&self.admin.url), &err),
            }),
        }
    }

    async fn seal_template(&self, building: &DatabaseName, template: &DatabaseName) -> Result<(), DatabaseError> {
        self.templates_supported()?;
        // Renamed, then marked: only a template that is complete is ever marked, and
        // `template_ready` asks for the mark. Closed to connections, so no pool ever holds it
        // open (which would make every copy wait, then fail).
        for sql in [
            format!("ALTER DATABASE {} RENAME TO {}", building.pg_quoted(), template.pg_quoted()),
            format!("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false", template.pg_quoted()),
        ] {
            self.admin.execute(&sql, |source| self.create_error(template, source)).await?;
        }
        Ok(())
    }

    async fn create_from_template(&self, template: &DatabaseName, database: &DatabaseName) -> Result<(), DatabaseError> {
        self.templates_supported()?;
        let sql = format!("CREATE DATABASE {} TEMPLATE {}", database.pg_quoted(), template.pg_quoted());
        self.admin.execute(&sql, |source| self.create_error(database, source)).await
    }

    async fn template_names(&self, naming: &super::DatabaseNaming) -> Result<Vec<DatabaseName>, DatabaseError> {
        self.templates_supported()?;
        let names = self.admin.names("SELECT datname::text FROM pg_database", "list templates".into()).await?;
        Ok(names.iter().filter(|name| naming.is_template_name(name)).filter_map(|name| DatabaseName::parse(name).ok()).collect())
    }

    async fn rename_database(&self, from: &DatabaseName, to: &DatabaseName) -> Result<bool, DatabaseError> {
        let sql = D::rename_sql(from, to).ok_or(DatabaseError::NoPool(D::DRIVER))?;
        let mut missing = false;
        let renamed = self
            .admin
            .execute(&sql, |source| {
                missing = D::is_missing(&source.0);
                self.create_error(to, source)
            })
            .await;
        match renamed {
            Ok(()) => Ok(true),
            Err(_) if missing => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn take_pooled(&self, pooled: &DatabaseName, database: &DatabaseName, login: Option<&Login>) -> Result<Taken, DatabaseError> {
        // Under roles the pool's databases all have theirs (the pool's fingerprint tells them apart).
        let Some((login, statements)) = login.and_then(|login| Some((login, D::take_pooled_sql(pooled, database, login)?))) else {
            return Ok(if self.rename_database(pooled, database).await? { Taken::Renamed } else { Taken::ByAnother });
        };
        // As one simple query, which PostgreSQL (the one engine with such a pool) runs as one
        // transaction: one commit, and nothing changed if any of it fails.
        let mut missing = false;
        let taken = self
            .admin
            .execute(&statements.join(";\n"), |source| {
                missing = D::is_missing(&source.0);
                self.secure_error(database, &login.role, source)
            })
            .await;
        match taken {
            Ok(()) => Ok(Taken::Secured),
            // Another signup renamed it first (or a drain dropped it, or a hand its role): try
            // the next.
            Err(_) if missing => Ok(Taken::ByAnother),
            Err(err) => Err(err),
        }
    }

    async fn database_names(&self) -> Result<Vec<String>, DatabaseError> {
        let sql = D::NAMES_SQL.ok_or(DatabaseError::NoPool(D::DRIVER))?;
        self.admin.names(sql, "list databases".into()).await
    }

    async fn drop_template(&self, template: &DatabaseName) -> Result<(), DatabaseError> {
        self.templates_supported()?;
        if self.database_exists(template).await? {
            // A database marked as template cannot be dropped until unmarked.
            let unmark = format!("ALTER DATABASE {} WITH IS_TEMPLATE false", template.pg_quoted());
            let location = self.location(template);
            self.admin.execute(&unmark, |source| DatabaseError::Drop { database: template.clone(), location, source }).await?;
        }
        self.drop_database(template).await?;
        if D::template_owner_sql(template).is_some() {
            // The role holding its objects goes too, unless copies of the template still hold
            // objects of it: then it stays, as tenants' roles need it.
            let drop = format!("DROP ROLE IF EXISTS {}", template.pg_quoted());
            if let Err(err) = self
                .admin
                .execute(&drop, |source| DatabaseError::DropRole { role: template.clone(), location: self.admin.url.to_string(), source })
                .await
            {
                tracing::debug!(role = %template, error = %err, "the role of an old template is kept: copies of it hold its objects");
            }
        }
        Ok(())
    }
}

impl<D: Dialect> ServerManager<D> {
    /// Runs `sql`, an [`Dialect::adopt_sql`], where the dialect says: in `database` itself, as the
    /// server's user (what is in a database is changed from inside it), or on the admin pool.
    async fn adopt(&self, database: &DatabaseName, sql: &str, failed: impl Fn(DbMessage) -> DatabaseError) -> Result<(), DatabaseError> {
        if !D::ADOPT_IN_DATABASE {
            return self.admin.execute(sql, failed).await;
        }
        let mut options = self.admin.settings.admin_options(self.admin.url.connection_url_for(database.as_str()));
        options.max_connections(1);
        let inside = self.admin.open(options, self.location(database)).await?;
        let adopted = inside.execute_unprepared(sql).await.map_err(|err| failed(DbMessage::scrubbed(Some(&self.admin.url), &err)));
        inside.close().await.ok();
        adopted.map(drop)
    }

    /// Runs `making` (which makes `role` and may give it `database`), then gives `role` what is
    /// in `database`; nothing where the dialect has neither.
    async fn hand_over(&self, database: &DatabaseName, role: &DatabaseName, making: Option<Vec<String>>) -> Result<(), DatabaseError> {
        let (Some(making), Some(adopt)) = (making, D::adopt_sql(database, role)) else { return Ok(()) };
        let failed = |source| self.secure_error(database, role, source);
        self.admin.execute(&making.join(";\n"), failed).await?;
        self.adopt(database, &adopt, failed).await
    }

    fn secure_error(&self, database: &DatabaseName, role: &DatabaseName, source: DbMessage) -> DatabaseError {
        DatabaseError::Secure { role: role.clone(), database: database.clone(), location: self.location(database), source }
    }

    fn templates_supported(&self) -> Result<(), DatabaseError> {
        if D::TEMPLATES { Ok(()) } else { Err(DatabaseError::NoTemplates(D::DRIVER)) }
    }

    /// A failed `CREATE`, told apart from "it exists already" as [`DatabaseManager::create_database`] does.
    fn create_error(&self, database: &DatabaseName, source: DbMessage) -> DatabaseError {
        let location = self.location(database);
        if D::is_already_exists(&source.0) {
            DatabaseError::AlreadyExists { database: database.clone(), location }
        } else {
            DatabaseError::Create { database: database.clone(), location, source }
        }
    }
}
