//! `monitor stats`' figures of each tenant: the server's (size, connections; see [`crate::census`])
//! and those read inside its database with one connection (tables, rows, cache, migrations).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use serde::Serialize;
use tenancy_core::cache::CacheStats;
use tenancy_core::command::Fact;
use tenancy_core::command::format::error_chain;
use tenancy_core::{Tenancy, Tenant, migrate};

use crate::census::Footprint;

/// Everything `monitor stats` shows about one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStats {
    /// The tenant.
    #[serde(skip)]
    pub tenant: Tenant,
    /// Bytes of its data; `None` when its database is missing.
    pub size_bytes: Option<u64>,
    /// Sessions connected to its database, where the server can tell.
    pub connections: Option<u64>,
    /// What was read inside its database, or why it could not be.
    #[serde(flatten)]
    pub inside: Reading,
    /// Figures the plugins keep about it, by name.
    pub facts: BTreeMap<String, Fact>,
}

/// What was read inside a tenant's database.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reading {
    /// Its figures.
    Read(Inside),
    /// Why it could not be read.
    Unreadable {
        /// The error and its causes.
        error: String,
    },
}

impl Reading {
    /// The figures, if read.
    pub fn figures(&self) -> Option<&Inside> {
        match self {
            Self::Read(inside) => Some(inside),
            Self::Unreadable { .. } => None,
        }
    }
}

/// What one connection to the tenant's database tells.
#[derive(Debug, Clone, Serialize)]
pub struct Inside {
    /// Tables, tracking tables included.
    pub tables: u64,
    /// Rows in them: exact on SQLite (it has no estimate), the server's live-row estimate elsewhere.
    pub rows: u64,
    /// The cache store's kind and size, when the tenant has a cache.
    pub cache: Option<CacheFigures>,
    /// Migrations not yet applied.
    pub pending_migrations: usize,
    /// When the most recent migration was applied.
    pub last_migration_at: Option<DateTime<Utc>>,
}

/// A tenant's cache.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheFigures {
    /// `database`, `redis` or `memory`.
    pub store: &'static str,
    /// Entries and bytes.
    #[serde(flatten)]
    pub size: CacheStats,
}

impl TenantStats {
    /// Puts together what the server and the tenant's database said.
    pub fn new(tenant: Tenant, footprint: Option<Footprint>, inside: Reading) -> Self {
        Self {
            tenant,
            size_bytes: footprint.map(|f| f.size_bytes),
            connections: footprint.and_then(|f| f.connections),
            inside,
            facts: BTreeMap::new(),
        }
    }
}

/// Reads `tenant`'s figures with one connection.
pub async fn inside(tenancy: &Tenancy, tenant: &Tenant) -> Reading {
    let migrations = tenancy.migrations();
    let read = tenancy
        .run_with_one_connection(tenant, |ctx| async move {
            let db = ctx.db();
            if !crate::health::is_there(db).await? {
                return Err(DbErr::Custom(crate::health::MISSING_SCHEMA.to_owned()));
            }
            let (tables, rows) = tables_and_rows(db).await?;
            let status = migrate::status::read(db, migrations).await?;
            let cache = match ctx.cache() {
                Some(cache) => {
                    Some(CacheFigures { store: cache.kind(), size: cache.stats().await.map_err(|err| DbErr::Custom(error_chain(&err)))? })
                }
                None => None,
            };
            Ok::<_, DbErr>(Inside {
                tables,
                rows,
                cache,
                pending_migrations: status.pending(),
                last_migration_at: status.migrations.iter().filter_map(|m| m.applied_at).max(),
            })
        })
        .await;
    match read {
        Ok(Ok(inside)) => Reading::Read(inside),
        Ok(Err(err)) => Reading::Unreadable { error: error_chain(&err) },
        Err(err) => Reading::Unreadable { error: error_chain(&err) },
    }
}

/// Tables of the tenant's database (or schema) and the rows in them.
async fn tables_and_rows(db: &DatabaseConnection) -> Result<(u64, u64), DbErr> {
    let backend = db.get_database_backend();
    let one_row = |sql: &str| Statement::from_string(backend, sql.to_owned());
    let row = match backend {
        DbBackend::Sqlite => {
            let names = db
                .query_all_raw(one_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
                .await?
                .into_iter()
                .map(|row| row.try_get_by_index::<String>(0))
                .collect::<Result<Vec<_>, _>>()?;
            if names.is_empty() {
                return Ok((0, 0));
            }
            // SQLite keeps no row estimate; one statement counts every table.
            let counts: Vec<String> =
                names.iter().map(|name| format!("(SELECT COUNT(*) FROM \"{}\")", name.replace('"', "\"\""))).collect();
            let rows: i64 = query_one(db, one_row(&format!("SELECT {}", counts.join(" + ")))).await?.try_get_by_index(0)?;
            return Ok((names.len() as u64, rows.max(0) as u64));
        }
        DbBackend::Postgres => {
            query_one(
                db,
                one_row(
                    "SELECT COUNT(*)::bigint, COALESCE(SUM(COALESCE(s.n_live_tup, GREATEST(c.reltuples, 0)::bigint)), 0)::bigint \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
                     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
                ),
            )
            .await?
        }
        _ => {
            query_one(
                db,
                one_row(
                    "SELECT CAST(COUNT(*) AS SIGNED), CAST(COALESCE(SUM(table_rows), 0) AS SIGNED) FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'",
                ),
            )
            .await?
        }
    };
    let tables: i64 = row.try_get_by_index(0)?;
    let rows: i64 = row.try_get_by_index(1)?;
    Ok((tables.max(0) as u64, rows.max(0) as u64))
}

async fn query_one(db: &DatabaseConnection, statement: Statement) -> Result<sea_orm::QueryResult, DbErr> {
    db.query_one_raw(statement).await?.ok_or_else(|| DbErr::RecordNotFound("table statistics".into()))
}
