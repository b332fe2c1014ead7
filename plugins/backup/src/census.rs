//! What is in a database: its tables with their row counts, and the server's version. Read into
//! the manifest when a backup is made, and again from a restored copy to compare.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use crate::sql::{quote_ident, quote_mysql};

/// The engine's dialect of the catalog queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: the tables of the first schema on the search path.
    Postgres,
    /// MySQL: the tables of the current database.
    MySql,
    /// SQLite: the tables of `main`.
    Sqlite,
}

/// Rows per table, every base table.
///
/// # Errors
/// A failed query.
pub async fn count_rows(db: &impl ConnectionTrait, dialect: Dialect) -> Result<BTreeMap<String, u64>, DbErr> {
    let (list, quote): (&str, fn(&str) -> String) = match dialect {
        Dialect::Postgres => {
            ("SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY 1", quote_ident)
        }
        Dialect::MySql => (
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
            quote_mysql,
        ),
        Dialect::Sqlite => {
            ("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1", quote_ident)
        }
    };
    let backend = db.get_database_backend();
    let mut counts = BTreeMap::new();
    for row in db.query_all_raw(Statement::from_string(backend, list)).await? {
        let table: String = row.try_get_by_index(0)?;
        let count = db
            .query_one_raw(Statement::from_string(backend, format!("SELECT COUNT(*) FROM {}", quote(&table))))
            .await?
            .map(|row| row.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        counts.insert(table, u64::try_from(count).unwrap_or(0));
    }
    Ok(counts)
}

/// The server's (or library's) version: `15.20`, `10.11.6-MariaDB-0+deb12u1`, `3.46.0`.
///
/// # Errors
/// A failed query.
pub async fn server_version(db: &DatabaseConnection, dialect: Dialect) -> Result<String, DbErr> {
    let query = match dialect {
        Dialect::Postgres => "SHOW server_version",
        Dialect::MySql => "SELECT VERSION()",
        Dialect::Sqlite => "SELECT sqlite_version()",
    };
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), query)).await?;
    Ok(row.map(|row| row.try_get_by_index::<String>(0)).transpose()?.unwrap_or_default())
}

/// The leading number of a version: `15` of `15.20 (Debian …)`.
pub fn major(version: &str) -> Option<u32> {
    version.trim().split(|c: char| !c.is_ascii_digit()).find(|part| !part.is_empty())?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn majors() {
        assert_eq!(super::major("15.20 (Debian 15.20-0+deb12u1)"), Some(15));
        assert_eq!(super::major("pg_dump (PostgreSQL) 16.1"), Some(16));
        assert_eq!(super::major(""), None);
    }
}
