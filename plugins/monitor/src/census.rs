//! What the database servers say about the tenants without opening any of them: each tenant's
//! size and the connections to its database, in one query per server (file sizes on SQLite).
//! `monitor stats`, `monitor watch` and the `/metrics` sampler all start here, so a refresh costs
//! a query per server, never one per tenant.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};
use tenancy_core::command::format::error_chain;
use tenancy_core::database::Isolation;
use tenancy_core::database::ServerUrl;
use tenancy_core::{Driver, Tenancy, Tenant, TenantId};

/// How long a server gets to accept the monitor's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One tenant, as its server sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes of its tables and indexes (SQLite: the file and its WAL).
    pub size_bytes: u64,
    /// Sessions connected to its database, from every process; `None` where the server cannot
    /// tell (SQLite, PostgreSQL schemas, which share one database).
    pub connections: Option<u64>,
}

/// The fleet, as its servers see it.
#[derive(Debug, Default)]
pub struct Census {
    /// Tenants found; a tenant missing here has no database (or schema, or file).
    pub tenants: HashMap<TenantId, Footprint>,
    /// Per server that counts them: sessions connected to tenant databases.
    pub servers: BTreeMap<String, u64>,
    /// Servers that could not be asked, and why.
    pub unreachable: BTreeMap<String, String>,
}

impl Census {
    /// Asks every server holding one of `tenants`, at most `queries` at once.
    pub async fn take(tenancy: &Tenancy, tenants: &[Tenant], queries: usize) -> Self {
        let mut census = Self::default();
        let mut by_server: BTreeMap<String, Vec<Tenant>> = BTreeMap::new();
        for tenant in tenants {
            by_server.entry(tenant.server.clone()).or_default().push(tenant.clone());
        }
        let mut asked = futures::stream::iter(by_server)
            .map(|(server, tenants): (String, Vec<Tenant>)| async move {
                let answer = ask(tenancy, &server, &tenants).await;
                (server, answer)
            })
            .buffer_unordered(queries.max(1));
        while let Some((server, answer)) = asked.next().await {
            match answer {
                Ok(found) => {
                    // Only where the server counts them: a 0 for SQLite would read as "idle".
                    if found.values().any(|f| f.connections.is_some()) {
                        census.servers.insert(server, found.values().filter_map(|f| f.connections).sum());
                    }
                    census.tenants.extend(found);
                }
                Err(err) => {
                    census.unreachable.insert(server, format!("{err:#}"));
                }
            }
        }
        census
    }

    /// Bytes of every tenant found.
    pub fn total_bytes(&self) -> u64 {
        self.tenants.values().map(|f| f.size_bytes).sum()
    }
}

async fn ask(tenancy: &Tenancy, server: &str, tenants: &[Tenant]) -> anyhow::Result<HashMap<TenantId, Footprint>> {
    let config = &tenancy.config().tenant_database;
    if config.driver == Driver::Sqlite {
        return Ok(sqlite_files(tenancy, tenants));
    }
    let url = config.servers.get(server).ok_or_else(|| anyhow::anyhow!("server `{server}` is not configured"))?;
    let url = ServerUrl::parse(url.url.expose())?;
    let db = connect(&url.connection_url())
        .await
        .map_err(|err| anyhow::anyhow!("cannot connect to {}: {}", url.host_port(), error_chain(&err)))?;
    let names = tenants.iter().map(|t| t.database.as_str()).collect::<Vec<_>>().join(",");
    let rows = query(&db, config.driver, config.isolation, names).await;
    let _ = db.close().await;
    let by_name: HashMap<&str, TenantId> = tenants.iter().map(|t| (t.database.as_str(), t.id)).collect();
    Ok(rows?.into_iter().filter_map(|(name, footprint)| Some((*by_name.get(name.as_str())?, footprint))).collect())
}

/// One connection, never a pool: the monitor asks one question and leaves.
async fn connect(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).min_connections(0).connect_timeout(CONNECT_TIMEOUT).acquire_timeout(CONNECT_TIMEOUT).sqlx_logging(false);
    Database::connect(options).await
}

/// MariaDB: the bytes of each database's InnoDB files, as allocated on disk. `data_length` in
/// `information_schema.tables` comes from InnoDB's sampled statistics, which lag behind a bulk
/// load until they are recalculated; the files do not.
const MARIADB_FILES: &str = "SELECT s.schema_name, CAST(COALESCE(f.bytes, 0) AS SIGNED), COALESCE(c.sessions, 0) \
     FROM information_schema.schemata s \
     LEFT JOIN (SELECT SUBSTRING_INDEX(name, '/', 1) AS db, SUM(allocated_size) AS bytes \
                FROM information_schema.innodb_sys_tablespaces GROUP BY 1) f ON f.db = s.schema_name \
     LEFT JOIN (SELECT db, COUNT(*) AS sessions FROM information_schema.processlist WHERE db IS NOT NULL GROUP BY db) c \
               ON c.db = s.schema_name \
     WHERE FIND_IN_SET(s.schema_name, ?)";

/// MySQL: the table statistics' data and index lengths.
const MYSQL_STATISTICS: &str = "SELECT s.schema_name, CAST(COALESCE(SUM(t.data_length + t.index_length), 0) AS SIGNED), \
     (SELECT COUNT(*) FROM information_schema.processlist p WHERE p.db = s.schema_name) \
     FROM information_schema.schemata s LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name \
     WHERE FIND_IN_SET(s.schema_name, ?) GROUP BY s.schema_name";

/// `(database or schema name, footprint)` for the names in `names` (comma-separated; database
/// names are checked identifiers, so they hold no comma).
async fn query(db: &DatabaseConnection, driver: Driver, isolation: Isolation, names: String) -> anyhow::Result<Vec<(String, Footprint)>> {
    let (backend, sql) = match (driver, isolation) {
        (Driver::Postgres, Isolation::Database) => (
            DbBackend::Postgres,
            "SELECT d.datname::text, pg_database_size(d.oid)::bigint, \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid)::bigint \
             FROM pg_database d WHERE d.datname = ANY(string_to_array($1, ','))",
        ),
        (Driver::Postgres, Isolation::Schema) => (
            DbBackend::Postgres,
            "SELECT n.nspname::text, \
             COALESCE(SUM(pg_total_relation_size(c.oid)) FILTER (WHERE c.relkind IN ('r', 'p', 'm')), 0)::bigint, NULL::bigint \
             FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid \
             WHERE n.nspname = ANY(string_to_array($1, ',')) GROUP BY n.nspname",
        ),
        _ => (DbBackend::MySql, MARIADB_FILES),
    };
    let rows = match db.query_all_raw(Statement::from_sql_and_values(backend, sql, [Value::from(names.clone())])).await {
        // MySQL 8 has no `innodb_sys_tablespaces`: the table statistics are what it has.
        Err(_) if backend == DbBackend::MySql => {
            db.query_all_raw(Statement::from_sql_and_values(backend, MYSQL_STATISTICS, [Value::from(names)])).await?
        }
        rows => rows?,
    };
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get_by_index(0)?;
        let size: i64 = row.try_get_by_index(1)?;
        let connections: Option<i64> = row.try_get_by_index(2)?;
        found.push((name, Footprint { size_bytes: size.max(0) as u64, connections: connections.map(|n| n.max(0) as u64) }));
    }
    Ok(found)
}

/// Each SQLite tenant's file and its write-ahead log, as the file system measures them.
fn sqlite_files(tenancy: &Tenancy, tenants: &[Tenant]) -> HashMap<TenantId, Footprint> {
    let mut found = HashMap::with_capacity(tenants.len());
    for tenant in tenants {
        let Ok(manager) = tenancy.manager_of(tenant) else { continue };
        let file = PathBuf::from(manager.location(&tenant.database));
        let Ok(metadata) = std::fs::metadata(&file) else { continue };
        let mut wal = file.into_os_string();
        wal.push("-wal");
        let wal = std::fs::metadata(wal).map_or(0, |m| m.len());
        found.insert(tenant.id, Footprint { size_bytes: metadata.len() + wal, connections: None });
    }
    found
}
