//! Size statistics of one tenant database, measured by the database itself, and its rows per table.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// Tables and bytes of one tenant database (or schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DatabaseStats {
    /// Tables, tracking tables included.
    pub tables: u64,
    /// Bytes used by its tables and indexes (SQLite: the whole file).
    pub size_bytes: u64,
}

/// Measures the tenant database `db` is connected to.
///
/// # Errors
/// When the catalog cannot be read.
pub async fn measure(db: &DatabaseConnection) -> Result<DatabaseStats, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => {
            "SELECT (SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'), \
             (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())"
        }
        DbBackend::Postgres => {
            "SELECT COUNT(*)::bigint, COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        }
        _ => {
            "SELECT CAST(COUNT(*) AS SIGNED), CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) \
             FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
    };
    let row =
        db.query_one_raw(Statement::from_string(backend, sql)).await?.ok_or_else(|| DbErr::RecordNotFound("database statistics".into()))?;
    let tables: i64 = row.try_get_by_index(0)?;
    let size: i64 = row.try_get_by_index(1)?;
    Ok(DatabaseStats { tables: tables.max(0) as u64, size_bytes: size.max(0) as u64 })
}

/// Rows per table, every base table of the database (or, on PostgreSQL, the schema first on the
/// search path) `db` is connected to: what a copy of it must have too (a move checks it, a backup
/// records it).
///
/// # Errors
/// A failed query.
pub async fn count_rows(db: &impl ConnectionTrait) -> Result<BTreeMap<String, u64>, DbErr> {
    let backend = db.get_database_backend();
    let list = match backend {
        DbBackend::Postgres => "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY 1",
        DbBackend::MySql => {
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1",
    };
    let mut counts = BTreeMap::new();
    for row in db.query_all_raw(Statement::from_string(backend, list)).await? {
        let table: String = row.try_get_by_index(0)?;
        // Names from the catalog, quoted whatever they hold.
        let quoted = match backend {
            DbBackend::MySql => format!("`{}`", table.replace('`', "``")),
            _ => format!("\"{}\"", table.replace('"', "\"\"")),
        };
        let count = db
            .query_one_raw(Statement::from_string(backend, format!("SELECT COUNT(*) FROM {quoted}")))
            .await?
            .map(|row| row.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        counts.insert(table, u64::try_from(count).unwrap_or(0));
    }
    Ok(counts)
}
