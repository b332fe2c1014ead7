//! SQLite: a consistent snapshot with `VACUUM INTO` (never a copy of a live file, which may be
//! mid-write or have its latest pages in the WAL), and a restore that replaces the tenant's tables
//! in one transaction on the live database, so open connections simply see the new data.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tenancy_core::migrate::MigrationSet;

use crate::archive::Sealing;
use crate::census::{self, Dialect};
use crate::engine::Dumped;
use crate::sql::{quote_ident, quote_literal};

/// Snapshots the database behind `db` into a file in `staging` and seals it into `target`.
///
/// # Errors
/// When the snapshot or the write fails.
pub async fn dump(
    db: &DatabaseConnection,
    staging: &Path,
    target: File,
    migrations: &MigrationSet,
    sealing: Sealing,
) -> anyhow::Result<Dumped> {
    let server_version = census::server_version(db, Dialect::Sqlite).await?;
    // A folder of its own, removed however this ends: VACUUM INTO wants a new file, and a failed
    // one leaves a journal beside it.
    let folder = tempfile::Builder::new().prefix(".snapshot-").tempdir_in(staging)?;
    let snapshot = folder.path().join("snapshot.sqlite");
    db.execute_unprepared(&format!("VACUUM INTO {}", quote_literal(&snapshot.to_string_lossy()))).await?;
    let (counted, tables) = census_of(&snapshot).await?;
    let migrations = tenancy_core::migrate::status::read(&counted, migrations).await?.applied_names();
    counted.close().await?;
    let file = File::open(&snapshot)?;
    let sealed = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(file);
        crate::archive::seal(&mut reader, target, &sealing)
    })
    .await??;
    drop(folder);
    Ok(Dumped {
        sealed,
        tables,
        migrations,
        server_version: server_version.clone(),
        tool: format!("VACUUM INTO (SQLite {server_version})"),
    })
}

/// Opens the SQLite file at `path` read-only and counts its rows.
///
/// # Errors
/// When it is not a readable database.
pub async fn census_of(path: &Path) -> anyhow::Result<(DatabaseConnection, BTreeMap<String, u64>)> {
    let db = open_read_only(path).await?;
    let counts = census::count_rows(&db).await?;
    Ok((db, counts))
}

async fn open_read_only(path: &Path) -> anyhow::Result<DatabaseConnection> {
    let url = url::Url::from_file_path(path).map_err(|()| anyhow::anyhow!("`{}` is not an absolute path", path.display()))?;
    let mut options = sea_orm::ConnectOptions::new(format!("sqlite://{}?mode=ro", url.path()));
    options.max_connections(1).sqlx_logging(false);
    Ok(sea_orm::Database::connect(options).await?)
}

/// Checks that the file is a SQLite database that passes `PRAGMA integrity_check`.
///
/// # Errors
/// When it is not.
pub async fn check(dump: &Path) -> anyhow::Result<String> {
    let db = open_read_only(dump).await?;
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), "PRAGMA integrity_check")).await?;
    let verdict: String = row.map(|row| row.try_get_by_index(0)).transpose()?.unwrap_or_default();
    let tables = census::count_rows(&db).await?.len();
    db.close().await?;
    if verdict == "ok" {
        Ok(format!("SQLite's integrity check passes ({tables} tables)"))
    } else {
        anyhow::bail!("SQLite's integrity check fails: {verdict}")
    }
}

/// Replaces everything in the database behind `db` (one connection) with the snapshot at `dump`,
/// in one transaction: tables, rows, `AUTOINCREMENT` counters, indexes, triggers and views.
///
/// # Errors
/// When a statement fails; the transaction is then rolled back and the database is as it was.
pub async fn restore(db: &DatabaseConnection, dump: &Path, lock_timeout: Duration) -> anyhow::Result<()> {
    // Writers of the tenant's database hold it for as long as their transaction: wait, not forever.
    db.execute_unprepared(&format!("PRAGMA busy_timeout = {}", lock_timeout.as_millis())).await?;
    db.execute_unprepared(&format!("ATTACH DATABASE {} AS backup", quote_literal(&dump.to_string_lossy()))).await?;
    db.execute_unprepared("BEGIN IMMEDIATE").await?;
    let replaced = replace_all(db).await;
    let finished = match &replaced {
        Ok(()) => db.execute_unprepared("COMMIT").await.map(drop),
        Err(_) => db.execute_unprepared("ROLLBACK").await.map(drop),
    };
    let detached = db.execute_unprepared("DETACH DATABASE backup").await;
    replaced?;
    finished?;
    detached?;
    Ok(())
}

async fn replace_all(db: &DatabaseConnection) -> anyhow::Result<()> {
    // Foreign keys are checked at commit, when every table is back.
    db.execute_unprepared("PRAGMA defer_foreign_keys = ON").await?;
    for (kind, name, _) in schema(db, "main", "type IN ('view', 'table') ORDER BY type = 'table'").await? {
        db.execute_unprepared(&format!("DROP {} main.{}", kind.to_uppercase(), quote_ident(&name))).await?;
    }
    for (_, name, sql) in schema(db, "backup", "type = 'table' AND sql IS NOT NULL").await? {
        db.execute_unprepared(&sql).await?;
        db.execute_unprepared(&format!("INSERT INTO main.{0} SELECT * FROM backup.{0}", quote_ident(&name))).await?;
    }
    let counters = "SELECT 1 FROM backup.sqlite_master WHERE name = 'sqlite_sequence'";
    if db.query_one_raw(Statement::from_string(db.get_database_backend(), counters)).await?.is_some() {
        db.execute_unprepared("DELETE FROM main.sqlite_sequence").await?;
        db.execute_unprepared("INSERT INTO main.sqlite_sequence SELECT * FROM backup.sqlite_sequence").await?;
    }
    for (_, _, sql) in schema(db, "backup", "type IN ('index', 'trigger', 'view') AND sql IS NOT NULL ORDER BY type = 'view'").await? {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// `(type, name, sql)` of the objects of `database` (`main` or `backup`) that `filter` selects,
/// SQLite's own excepted.
async fn schema(db: &DatabaseConnection, database: &str, filter: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let query = format!(
        "SELECT type, name, COALESCE(sql, '') FROM {database}.sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND {filter}"
    );
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), query)).await?;
    rows.iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?)))
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(Into::into)
}
