//! The central registry: tenants and their domains, in one database with its own migrator.
//!
//! [`Registry::open`] connects and brings the schema up to date (under a lock, so twenty processes
//! starting at once migrate it once). Every read turns rows into checked [`Tenant`]s; every write that
//! can collide (a domain taken by another tenant) says which input collided.

mod changes;
mod entity;
mod failures;
mod migrations;
mod moves;
mod redis_databases;
mod resolve;
mod servers;

pub use failures::RecordedFailure;
pub use migrations::RegistryMigrator;
pub use resolve::TenantRefError;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
    SqlErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::config::{CentralLocation, Config};
use crate::database::{DatabaseName, DbMessage, ServerUrl};
use crate::maintenance::Maintenance;
use crate::{Domain, Tenant, TenantDomain, TenantId, TenantName, TenantStatus};
use entity::{domains, migration_failures, tenants};

/// A failed registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry database cannot be reached or opened.
    #[error("cannot open the tenant registry at `{location}`")]
    Connect {
        /// Where the registry is (no credentials).
        location: String,
        /// Why.
        source: DbMessage,
    },
    /// The registry's own migrations failed.
    #[error("failed to migrate the tenant registry at `{location}`")]
    Migrate {
        /// Where.
        location: String,
        /// Why.
        source: DbMessage,
    },
    /// A query failed.
    #[error("failed to {action} in the tenant registry")]
    Query {
        /// What was being done.
        action: String,
        /// Why.
        source: DbMessage,
    },
    /// A file operation on the SQLite registry failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The domain belongs to another tenant already.
    #[error("domain `{domain}` is already taken by tenant {owner}")]
    DomainTaken {
        /// The domain.
        domain: Domain,
        /// The tenant that has it, as `name (id)`, or `another tenant` if it was taken in a race.
        owner: String,
    },
    /// The tenant does not have that domain.
    #[error("tenant {tenant} has no domain `{domain}`")]
    DomainNotFound {
        /// The domain.
        domain: Domain,
        /// The tenant, as `name (id)`.
        tenant: String,
    },
    /// No tenant has that id (it was deleted meanwhile).
    #[error("no tenant with id `{0}`")]
    NotFound(TenantId),
    /// Every Redis database meant for tenants is taken.
    #[error("every Redis database for tenants is taken ({available} of them, indexes {first} to {last}); tenant {tenant} gets none")]
    RedisDatabasesExhausted {
        /// `name (id)` of the tenant that asked.
        tenant: String,
        /// How many there are.
        available: u32,
        /// The first index.
        first: u32,
        /// The last index.
        last: u32,
    },
    /// A row that does not hold what the registry writes: edited by hand, or by a newer version.
    #[error("the registry row of tenant `{id}` is invalid: {problem}")]
    Corrupt {
        /// The row's id as stored.
        id: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl RegistryError {
    /// Whether this error comes from what the user typed (exit code 2) rather than a failure (1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::DomainTaken { .. } | Self::DomainNotFound { .. })
    }

    fn query(action: impl Into<String>) -> impl FnOnce(DbErr) -> Self {
        let action = action.into();
        move |err| Self::Query { action, source: DbMessage::scrubbed(None, &err) }
    }
}

/// What `Registry::insert` needs to record a new tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The id chosen for it.
    pub id: TenantId,
    /// Its name.
    pub name: TenantName,
    /// Its status (provisioning inserts `creating`).
    pub status: TenantStatus,
    /// Its database name.
    pub database: DatabaseName,
    /// The server its database goes on.
    pub server: String,
    /// Its domains; the first is primary.
    pub domains: Vec<Domain>,
    /// Whether its homepage is on.
    pub homepage_enabled: bool,
    /// Application data.
    pub data: serde_json::Value,
}

/// The central registry of tenants and domains.
#[derive(Debug, Clone)]
pub struct Registry {
    db: DatabaseConnection,
    location: String,
    changes: std::sync::Arc<changes::Changes>,
}

impl Registry {
    /// Connects to the registry the configuration names and applies its pending migrations.
    /// A SQLite registry file (and its folder) is created if missing.
    ///
    /// # Errors
    /// [`RegistryError::Connect`] naming where (never a password), or [`RegistryError::Migrate`].
    pub async fn open(config: &Config) -> Result<Self, RegistryError> {
        let location = central_location(config)?;
        let registry = match &location {
            CentralLocation::Sqlite(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| RegistryError::Io {
                        action: "create the folder",
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                // Create the file here: pools never create database files, so a mistyped tenant path fails loudly.
                std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|source| RegistryError::Io {
                    action: "create",
                    path: path.clone(),
                    source,
                })?;
                let mut options = ConnectOptions::new("sqlite://central.sqlite");
                options.max_connections(4).sqlx_logging(false);
                crate::database::sqlite_connect_options(path, &mut options);
                Self::connect(options, None, path_location(&location)).await?
            }
            CentralLocation::Server(url) => {
                let mut options = ConnectOptions::new(url.connection_url());
                options.max_connections(4).connect_timeout(config.connect_timeout()).sqlx_logging(false);
                Self::connect(options, Some(url), url.to_string()).await?
            }
        };
        registry.migrate(&location).await?;
        Ok(registry)
    }

    /// Creates the registry's database on its server if it does not exist yet (`tenancy init`).
    /// Returns whether it was created. A SQLite registry is created by [`Registry::open`] anyway.
    ///
    /// # Errors
    /// When the server cannot be reached, or the database name in `central.url` would need quoting.
    pub async fn create_database_if_missing(config: &Config) -> Result<bool, RegistryError> {
        let CentralLocation::Server(url) = central_location(config)? else {
            return Ok(false);
        };
        let location = url.to_string();
        let name = DatabaseName::parse(url.database()).map_err(|err| RegistryError::Connect {
            location: location.clone(),
            source: DbMessage(format!("{err}; create the registry database yourself")),
        })?;
        let maintenance = match url.driver() {
            crate::Driver::MySql => url.connection_url_for(""),
            _ => url.connection_url_for("postgres"),
        };
        let mut options = ConnectOptions::new(maintenance);
        options.max_connections(1).connect_timeout(config.connect_timeout()).sqlx_logging(false);
        let admin = Self::connect(options, Some(&url), location.clone()).await?;
        let query = |err: DbErr| RegistryError::Query {
            action: format!("create database `{name}`"),
            source: DbMessage::scrubbed(Some(&url), &err),
        };
        let backend = admin.db.get_database_backend();
        let (check, create) = match url.driver() {
            crate::Driver::MySql => (
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                format!("CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name.mysql_quoted()),
            ),
            _ => ("SELECT 1 FROM pg_database WHERE datname = $1", format!("CREATE DATABASE {}", name.pg_quoted())),
        };
        let exists = admin
            .db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(backend, check, [name.as_str().into()]))
            .await
            .map_err(query)?
            .is_some();
        if !exists {
            admin.db.execute_unprepared(&create).await.map_err(query)?;
        }
        let _ = admin.db.close().await;
        Ok(!exists)
    }

    async fn connect(options: ConnectOptions, server: Option<&ServerUrl>, location: String) -> Result<Self, RegistryError> {
        match crate::database::connect(options, server, location.clone()).await {
            Ok(db) => Ok(Self { db, location, changes: Default::default() }),
            Err(crate::database::DatabaseError::Connect { source, .. }) => Err(RegistryError::Connect { location, source }),
            Err(other) => Err(RegistryError::Connect { location, source: DbMessage::scrubbed(None, &other) }),
        }
    }

    /// The registry's connection, for applications that join their own tables to it.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Where the registry is, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Applies pending registry migrations, holding a lock so concurrent processes do it once.
    async fn migrate(&self, location: &CentralLocation) -> Result<(), RegistryError> {
        let migrate_err = |err: DbErr| RegistryError::Migrate { location: self.location.clone(), source: DbMessage::scrubbed(None, &err) };
        if RegistryMigrator::get_pending_migrations_read_only(&self.db).await.map_err(migrate_err)?.is_empty() {
            return Ok(());
        }
        tracing::info!(registry = %self.location, "migrating the tenant registry");
        match location {
            CentralLocation::Sqlite(path) => {
                let _lock = lock_file(path.with_extension("sqlite.lock")).await?;
                RegistryMigrator::up(&self.db, None).await.map_err(migrate_err)
            }
            CentralLocation::Server(url) => {
                // Session-level locks: take, use and release them on one dedicated connection.
                let mut options = ConnectOptions::new(url.connection_url());
                options.max_connections(1).sqlx_logging(false);
                let session = sea_orm::Database::connect(options).await.map_err(|err| RegistryError::Connect {
                    location: self.location.clone(),
                    source: DbMessage::scrubbed(Some(url), &err),
                })?;
                let (lock, unlock) = match url.driver() {
                    crate::Driver::MySql => {
                        ("SELECT GET_LOCK('tenancy_registry_migrations', 300)", "SELECT RELEASE_LOCK('tenancy_registry_migrations')")
                    }
                    _ => ("SELECT pg_advisory_lock(7305867001)", "SELECT pg_advisory_unlock(7305867001)"),
                };
                // GET_LOCK answers 1 when it has the lock, 0 after the timeout, NULL on error;
                // pg_advisory_lock waits and answers nothing but success.
                let backend = session.get_database_backend();
                let granted = session.query_one_raw(sea_orm::Statement::from_string(backend, lock)).await.map_err(migrate_err)?;
                if backend == sea_orm::DbBackend::MySql
                    && granted.and_then(|row| row.try_get_by_index::<Option<i64>>(0).ok()).flatten() != Some(1)
                {
                    let _ = session.close().await;
                    return Err(RegistryError::Migrate {
                        location: self.location.clone(),
                        source: DbMessage("another process held the registry's migration lock for 300 s; try again".into()),
                    });
                }
                let result = RegistryMigrator::up(&session, None).await.map_err(migrate_err);
                let _ = session.execute_unprepared(unlock).await;
                let _ = session.close().await;
                result
            }
        }
    }

    /// Records a new tenant and its domains in one transaction.
    ///
    /// # Errors
    /// [`RegistryError::DomainTaken`] if a domain belongs to another tenant (checked first, and again by
    /// the unique index, so a race between two creates is caught too).
    pub async fn insert(&self, new: &NewTenant) -> Result<Tenant, RegistryError> {
        for domain in &new.domains {
            self.ensure_domain_free(domain).await?;
        }
        let now = Utc::now();
        let txn = self.db.begin().await.map_err(RegistryError::query("start a transaction"))?;
        tenants::ActiveModel {
            id: Set(new.id.to_string()),
            name: Set(new.name.as_str().to_owned()),
            status: Set(new.status.as_str().to_owned()),
            homepage_enabled: Set(new.homepage_enabled),
            database: Set(new.database.as_str().to_owned()),
            server: Set(new.server.clone()),
            data: Set(new.data.clone()),
            maintenance: Set(None),
            migrated_set: Set(None),
            schema_epoch: Set(0),
            credentials_generation: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(RegistryError::query(format!("insert tenant `{}`", new.id)))?;
        for (index, domain) in new.domains.iter().enumerate() {
            insert_domain(&txn, &new.id, domain, index == 0).await?;
        }
        changes::record_change(&txn).await?;
        txn.commit().await.map_err(RegistryError::query("commit the new tenant"))?;
        self.changes.committed();
        self.get(&new.id).await?.ok_or(RegistryError::NotFound(new.id))
    }

    /// The tenant with `id`, if any.
    ///
    /// # Errors
    /// When the query fails or the row is invalid.
    pub async fn get(&self, id: &TenantId) -> Result<Option<Tenant>, RegistryError> {
        let Some(row) =
            tenants::Entity::find_by_id(id.to_string()).one(&self.db).await.map_err(RegistryError::query(format!("read tenant `{id}`")))?
        else {
            return Ok(None);
        };
        let mut found = self.with_domains(vec![row]).await?;
        Ok(found.pop())
    }

    /// The tenant with `id`.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] if there is none.
    pub async fn require(&self, id: &TenantId) -> Result<Tenant, RegistryError> {
        self.get(id).await?.ok_or(RegistryError::NotFound(*id))
    }

    /// Every tenant (with `status`, if given), oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is invalid.
    pub async fn list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, RegistryError> {
        let mut query = tenants::Entity::find().order_by_asc(tenants::Column::Id);
        if let Some(status) = status {
            query = query.filter(tenants::Column::Status.eq(status.as_str()));
        }
        let rows = query.all(&self.db).await.map_err(RegistryError::query("list tenants"))?;
        self.with_domains(rows).await
    }

    /// Sets a tenant's status.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] if the tenant is gone.
    pub async fn set_status(&self, id: &TenantId, status: TenantStatus) -> Result<Tenant, RegistryError> {
        self.update_tenant(id, tenants::Column::Status, status.as_str().into(), || format!("set the status of tenant `{id}`")).await
    }

    /// Turns a tenant's homepage on or off; returns the tenant as it is now.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when there is no such tenant; when the queries fail.
    pub async fn set_homepage_enabled(&self, id: &TenantId, enabled: bool) -> Result<Tenant, RegistryError> {
        self.update_tenant(id, tenants::Column::HomepageEnabled, enabled.into(), || format!("set the homepage of tenant `{id}`")).await
    }

    /// Takes a tenant down for maintenance (`Some`) or brings it back up (`None`); returns the
    /// tenant as it is now. Every process serving it sees the change at its next registry poll.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when there is no such tenant; when the queries fail.
    pub async fn set_maintenance(&self, id: &TenantId, maintenance: Option<&Maintenance>) -> Result<Tenant, RegistryError> {
        let value = sea_orm::Value::Json(maintenance.map(|m| Box::new(m.to_stored())));
        let action = || format!("set the maintenance mode of tenant `{id}`");
        self.update_tenant(id, tenants::Column::Maintenance, value, action).await
    }

    /// Forgets the migration set recorded for the tenant `id` and moves its schema epoch on. Call it
    /// before and after anything that may move the tenant's schema back (a rollback, a restore, a
    /// recreated database): a record made meanwhile by a `db migrate` that read the old epoch is
    /// then refused, and the next run reads the tenant's database. Not announced to other
    /// processes' caches: nothing they serve depends on it.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn forget_migrated_set(&self, id: &TenantId) -> Result<(), RegistryError> {
        tenants::Entity::update_many()
            .col_expr(tenants::Column::MigratedSet, Expr::value(Option::<String>::None))
            .col_expr(tenants::Column::SchemaEpoch, Expr::col(tenants::Column::SchemaEpoch).add(1))
            .filter(tenants::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(RegistryError::query(format!("forget the recorded migrations of tenant `{id}`")))?;
        Ok(())
    }

    /// Records that each tenant's database is up to date with the migration set `fingerprint`,
    /// unless its schema epoch moved since the given one was read (it may have moved back). One
    /// transaction for all.
    ///
    /// # Errors
    /// When the queries fail; nothing is recorded then.
    pub async fn record_migrated_set(&self, fingerprint: &str, tenants: &[(TenantId, i64)]) -> Result<(), RegistryError> {
        let action = || "record the tenants' migration set".to_owned();
        let txn = self.db.begin().await.map_err(RegistryError::query(action()))?;
        for (id, epoch) in tenants {
            tenants::Entity::update_many()
                .col_expr(tenants::Column::MigratedSet, Expr::value(fingerprint))
                .filter(tenants::Column::Id.eq(id.to_string()))
                .filter(tenants::Column::SchemaEpoch.eq(*epoch))
                .exec(&txn)
                .await
                .map_err(RegistryError::query(action()))?;
        }
        txn.commit().await.map_err(RegistryError::query(action()))
    }

    /// Records that the tenant `id`'s role password is now that of generation `generation`,
    /// announcing it to every process's caches: their pools on the old password are replaced.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], or when the query fails.
    pub async fn set_credentials_generation(&self, id: &TenantId, generation: i64) -> Result<Tenant, RegistryError> {
        let action = || format!("record the new credentials of tenant `{id}`");
        self.update_tenant(id, tenants::Column::CredentialsGeneration, generation.into(), action).await
    }

    /// Sets one column of a tenant, announcing the change to every process's caches.
    async fn update_tenant(
        &self,
        id: &TenantId,
        column: tenants::Column,
        value: sea_orm::Value,
        action: impl Fn() -> String,
    ) -> Result<Tenant, RegistryError> {
        let txn = self.db.begin().await.map_err(RegistryError::query(action()))?;
        let result = tenants::Entity::update_many()
            .col_expr(column, Expr::value(value))
            .col_expr(tenants::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(tenants::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(RegistryError::query(action()))?;
        if result.rows_affected == 0 {
            return Err(RegistryError::NotFound(*id));
        }
        changes::record_change(&txn).await?;
        txn.commit().await.map_err(RegistryError::query(action()))?;
        self.changes.committed();
        self.require(id).await
    }

    /// Removes a tenant and its domains. Removing a tenant that is already gone is not an error.
    ///
    /// # Errors
    /// When the queries fail.
    pub async fn delete(&self, id: &TenantId) -> Result<(), RegistryError> {
        let action = || format!("delete tenant `{id}`");
        let txn = self.db.begin().await.map_err(RegistryError::query(action()))?;
        domains::Entity::delete_many()
            .filter(domains::Column::TenantId.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(RegistryError::query(action()))?;
        migration_failures::Entity::delete_many()
            .filter(migration_failures::Column::TenantId.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(RegistryError::query(action()))?;
        // Frees its Redis database, if it had one (the foreign key would too, where enforced).
        txn.execute(&redis_databases::release(id)).await.map_err(RegistryError::query(action()))?;
        tenants::Entity::delete_by_id(id.to_string()).exec(&txn).await.map_err(RegistryError::query(action()))?;
        changes::record_change(&txn).await?;
        txn.commit().await.map_err(RegistryError::query(action()))?;
        self.changes.committed();
        Ok(())
    }

    /// Adds `domain` to a tenant; `primary` makes it the primary domain (as does being the first).
    ///
    /// # Errors
    /// [`RegistryError::DomainTaken`] if any tenant has it already.
    pub async fn add_domain(&self, tenant: &Tenant, domain: &Domain, primary: bool) -> Result<Tenant, RegistryError> {
        self.ensure_domain_free(domain).await?;
        let txn = self.db.begin().await.map_err(RegistryError::query("start a transaction"))?;
        let primary = primary || tenant.domains.is_empty();
        if primary {
            clear_primary(&txn, &tenant.id).await?;
        }
        insert_domain(&txn, &tenant.id, domain, primary).await?;
        changes::record_change(&txn).await?;
        txn.commit().await.map_err(RegistryError::query(format!("add domain `{domain}`")))?;
        self.changes.committed();
        self.require(&tenant.id).await
    }

    /// Removes `domain` from a tenant; if it was primary, the oldest remaining domain becomes primary.
    ///
    /// # Errors
    /// [`RegistryError::DomainNotFound`] if the tenant does not have it.
    pub async fn remove_domain(&self, tenant: &Tenant, domain: &Domain) -> Result<Tenant, RegistryError> {
        let Some(existing) = tenant.domains.iter().find(|d| &d.domain == domain) else {
            return Err(RegistryError::DomainNotFound { domain: domain.clone(), tenant: tenant.to_string() });
        };
        let action = || format!("remove domain `{domain}`");
        let txn = self.db.begin().await.map_err(RegistryError::query(action()))?;
        domains::Entity::delete_many()
            .filter(domains::Column::Domain.eq(domain.as_str()))
            .filter(domains::Column::TenantId.eq(tenant.id.to_string()))
            .exec(&txn)
            .await
            .map_err(RegistryError::query(action()))?;
        if existing.primary
            && let Some(next) = domains::Entity::find()
                .filter(domains::Column::TenantId.eq(tenant.id.to_string()))
                .order_by_asc(domains::Column::Id)
                .one(&txn)
                .await
                .map_err(RegistryError::query(action()))?
        {
            domains::Entity::update_many()
                .col_expr(domains::Column::IsPrimary, Expr::value(true))
                .filter(domains::Column::Id.eq(next.id))
                .exec(&txn)
                .await
                .map_err(RegistryError::query(action()))?;
        }
        changes::record_change(&txn).await?;
        txn.commit().await.map_err(RegistryError::query(action()))?;
        self.changes.committed();
        self.require(&tenant.id).await
    }

    /// The tenant that has `domain`, if any.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn find_by_domain(&self, domain: &Domain) -> Result<Option<Tenant>, RegistryError> {
        let row = domains::Entity::find()
            .filter(domains::Column::Domain.eq(domain.as_str()))
            .one(&self.db)
            .await
            .map_err(RegistryError::query(format!("look up domain `{domain}`")))?;
        match row {
            Some(row) => self.get(&parse_id(&row.tenant_id)?).await,
            None => Ok(None),
        }
    }

    /// Checks that no tenant has `domain`.
    ///
    /// # Errors
    /// [`RegistryError::DomainTaken`] naming the tenant that has it.
    pub async fn ensure_domain_free(&self, domain: &Domain) -> Result<(), RegistryError> {
        match self.find_by_domain(domain).await? {
            Some(owner) => Err(RegistryError::DomainTaken { domain: domain.clone(), owner: owner.to_string() }),
            None => Ok(()),
        }
    }

    /// Loads the domains of `rows` and turns each row into a checked [`Tenant`].
    async fn with_domains(&self, rows: Vec<tenants::Model>) -> Result<Vec<Tenant>, RegistryError> {
        let mut by_tenant: HashMap<String, Vec<TenantDomain>> = HashMap::new();
        // Chunks keep the IN list well under every backend's bind-parameter limit.
        for chunk in rows.chunks(500) {
            let ids = chunk.iter().map(|row| row.id.clone());
            let found = domains::Entity::find()
                .filter(domains::Column::TenantId.is_in(ids))
                .order_by_desc(domains::Column::IsPrimary)
                .order_by_asc(domains::Column::Id)
                .all(&self.db)
                .await
                .map_err(RegistryError::query("read domains"))?;
            for row in found {
                let domain = Domain::parse(&row.domain)
                    .map_err(|err| RegistryError::Corrupt { id: row.tenant_id.clone(), problem: err.to_string() })?;
                by_tenant.entry(row.tenant_id).or_default().push(TenantDomain { domain, primary: row.is_primary });
            }
        }
        rows.into_iter()
            .map(|row| {
                let domains = by_tenant.remove(&row.id).unwrap_or_default();
                tenant_from_row(row, domains)
            })
            .collect()
    }
}

fn tenant_from_row(row: tenants::Model, domains: Vec<TenantDomain>) -> Result<Tenant, RegistryError> {
    let corrupt = |problem: String| RegistryError::Corrupt { id: row.id.clone(), problem };
    Ok(Tenant {
        id: parse_id(&row.id)?,
        name: TenantName::parse(&row.name).map_err(|err| corrupt(err.to_string()))?,
        status: row.status.parse().map_err(|err: crate::tenant::UnknownStatus| corrupt(err.to_string()))?,
        homepage_enabled: row.homepage_enabled,
        database: DatabaseName::parse(&row.database).map_err(|err| corrupt(err.to_string()))?,
        server: row.server.clone(),
        data: row.data.clone(),
        maintenance: row
            .maintenance
            .as_ref()
            .map(Maintenance::from_stored)
            .transpose()
            .map_err(|err| corrupt(format!("its maintenance record is unreadable ({err})")))?,
        migrated_set: row.migrated_set.clone(),
        schema_epoch: row.schema_epoch,
        credentials_generation: row.credentials_generation,
        domains,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn parse_id(id: &str) -> Result<TenantId, RegistryError> {
    TenantId::parse(id).map_err(|err| RegistryError::Corrupt { id: id.to_owned(), problem: format!("the id is not a UUID ({err})") })
}

async fn insert_domain(db: &impl ConnectionTrait, tenant: &TenantId, domain: &Domain, primary: bool) -> Result<(), RegistryError> {
    let row = domains::ActiveModel {
        domain: Set(domain.as_str().to_owned()),
        tenant_id: Set(tenant.to_string()),
        is_primary: Set(primary),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    match domains::Entity::insert(row).exec(db).await {
        Ok(_) => Ok(()),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(RegistryError::DomainTaken { domain: domain.clone(), owner: "another tenant".into() })
        }
        Err(err) => Err(RegistryError::query(format!("add domain `{domain}`"))(err)),
    }
}

async fn clear_primary(db: &impl ConnectionTrait, tenant: &TenantId) -> Result<(), RegistryError> {
    domains::Entity::update_many()
        .col_expr(domains::Column::IsPrimary, Expr::value(false))
        .filter(domains::Column::TenantId.eq(tenant.to_string()))
        .exec(db)
        .await
        .map(drop)
        .map_err(RegistryError::query("update primary domain"))
}

/// Where `central.url` points; a URL that does not parse (a `Config` changed in code after loading)
/// is an error here rather than a panic.
fn central_location(config: &Config) -> Result<CentralLocation, RegistryError> {
    config.central_location().map_err(|err| RegistryError::Connect { location: "central.url".into(), source: DbMessage(err.to_string()) })
}

fn path_location(location: &CentralLocation) -> String {
    match location {
        CentralLocation::Sqlite(path) => path.display().to_string(),
        CentralLocation::Server(url) => url.to_string(),
    }
}

/// Holds an exclusive lock on `path` until dropped (the lock goes with the file handle).
async fn lock_file(path: PathBuf) -> Result<std::fs::File, RegistryError> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| RegistryError::Io { action: "open the lock file", path: path.clone(), source })?;
        file.lock().map_err(|source| RegistryError::Io { action: "lock", path, source })?;
        Ok(file)
    })
    .await
    .expect("the lock task does not panic")
}
