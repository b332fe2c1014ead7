//! What is in a database: its tables with their row counts, and the server's version. Read into
//! the manifest when a backup is made, and again from a restored copy to compare.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

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

/// Rows per table, every base table: core's count, the one `tenant move` checks a copy with.
pub use tenancy_core::migrate::stats::count_rows;

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
