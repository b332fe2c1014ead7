//! Size statistics of one tenant database, measured by the database itself.

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
